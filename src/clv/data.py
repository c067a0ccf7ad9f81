"""Read a transaction log, check it, and clean it into one row per customer and purchase day.

The cleaning rules, in order, each counted in a :class:`CleaningReport` (no row is dropped
without being counted there):

1. rows dated after ``as_of`` are ignored (scoring or training "as of" a day);
2. negative amounts are returns, not purchases: excluded (default) or an error
   (``data.negative_amounts``);
3. zero amounts are kept as purchase occasions (default) or excluded (``data.zero_amounts``);
4. implausible rows are excluded (default) or an error (``data.implausible``): a date no
   timestamp can hold, or more than ``data.date_window_years`` before or after the bulk of the
   log (its 1st–99th percentile of dates; in a log of fewer than 500 rows a narrower central
   range, so that one typo cannot stretch it); an amount that is not finite, above 1e15 in
   absolute value, or more than ``data.max_amount_ratio`` times the median positive amount.
   The report names the window and bounds and shows examples;
5. **same-day purchases of a customer are merged into one transaction, amounts summed** —
   the convention of the BTYD papers and of CDNOW as they use it. This is the one place where
   it is applied.

Timestamps: timezone-aware values are converted to ``data.timezone`` (default UTC) and calendar
days are counted there; naive values are taken to be in that zone already. Customer ids are read
as text, so ``00042`` stays ``00042``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import asdict, astuple, dataclass, replace
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clv.config import EMBEDDED_DATASETS, SERVQUAL_DIMENSIONS, Config, DataConfig
from clv.errors import DataValidationError
from clv.tables import (
    is_parquet,
    private_temp_dir,
    query,
    query_arrow,
    query_to_parquet,
    read_table,
)

#: Column names used inside clv, whatever the user's log calls them.
CUSTOMER, DATE, AMOUNT = "customer_id", "date", "amount"
#: The error for a log without rows.
EMPTY_LOG = "The transaction log is empty: there is nothing to train or score on."
#: Rows hashed at a time by :meth:`TransactionLog.fingerprint`.
FINGERPRINT_CHUNK_ROWS = 5_000_000
#: SERVQUAL survey items: expectation_<dimension>[_<item>], perception_<dimension>[_<item>].
SERVQUAL_COLUMN = re.compile(
    rf"^(expectation|perception)_({'|'.join(SERVQUAL_DIMENSIONS)})(_\w+)?$"
)


@dataclass(frozen=True)
class CleaningReport:
    """What cleaning did to the log: counts of rows per rule, and the result.

    ``rows_read = rows_used + negative_amount_rows (when excluded) + zero_amount_rows (when
    excluded) + rows_after_as_of + implausible_date_rows + implausible_amount_rows`` and
    ``transactions = rows_used - same_day_merged``.
    """

    rows_read: int
    rows_after_as_of: int
    negative_amount_rows: int
    negative_amount_total: float
    negative_amount_policy: str
    zero_amount_rows: int
    zero_amount_policy: str
    rows_used: int
    same_day_merged: int
    transactions: int
    customers: int
    first_date: str
    last_date: str
    timezone: str
    has_amounts: bool
    implausible_policy: str = "exclude"
    implausible_date_rows: int = 0
    implausible_amount_rows: int = 0
    implausible_rule: str = ""
    implausible_examples: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a JSON-compatible dict."""
        return asdict(self) | {"implausible_examples": list(self.implausible_examples)}

    def implausible_note(self) -> str | None:
        """What rule 4 left out or None: counts, the bounds, and examples of the rows."""
        count = self.implausible_date_rows + self.implausible_amount_rows
        if not count:
            return None
        bounds = "; ".join(
            filter(
                None,
                [
                    "dates no timestamp can hold"
                    if "dates outside" not in self.implausible_rule
                    else "",
                    self.implausible_rule,
                ],
            )
        )
        return (
            f"{count:,} implausible row(s) excluded from the log ({bounds}), e.g. "
            f"{'; '.join(self.implausible_examples)}. Check them at the source; "
            "data.implausible: error stops instead."
        )

    def rows(self) -> list[tuple[str, str]]:
        """Return (rule, what happened) pairs for printing."""
        out = [("rows read", f"{self.rows_read:,}")]
        if self.rows_after_as_of:
            out.append(("rows after the as-of day (ignored)", f"{self.rows_after_as_of:,}"))
        if self.has_amounts:
            neg = f"{self.negative_amount_rows:,}"
            if self.negative_amount_rows:
                neg += f" (total {self.negative_amount_total:,.2f})"
            out.append((f"negative amounts / returns ({self.negative_amount_policy})", neg))
            out.append((f"zero amounts ({self.zero_amount_policy})", f"{self.zero_amount_rows:,}"))
        if self.implausible_date_rows or self.implausible_amount_rows:
            policy = self.implausible_policy
            out.append((f"implausible dates ({policy})", f"{self.implausible_date_rows:,}"))
            if self.has_amounts:
                out.append((f"implausible amounts ({policy})", f"{self.implausible_amount_rows:,}"))
        out += [
            ("rows used", f"{self.rows_used:,}"),
            ("same-day rows merged", f"{self.same_day_merged:,}"),
            ("transactions (customer-days)", f"{self.transactions:,}"),
            ("customers", f"{self.customers:,}"),
            ("date range", f"{self.first_date} .. {self.last_date} ({self.timezone})"),
        ]
        return out


@dataclass(frozen=True)
class TransactionLog:
    """A cleaned log: one row per customer and purchase day, with the report of how it was made.

    The log is kept as its compact view (:class:`Compact`: int32 customer codes, day numbers and
    gaps, about 20 bytes a row with amounts, where text ids and timestamps take about 30 and more
    in pandas); :attr:`frame` rebuilds the readable table on each access. Build one from a
    table with :meth:`from_frame`.
    """

    compact: Compact
    report: CleaningReport

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, report: CleaningReport) -> TransactionLog:
        """The log of a cleaned table (sorted by customer and date)."""
        return cls(compact(frame), report)

    @property
    def frame(self) -> pd.DataFrame:
        """``customer_id`` (str), ``date`` (datetime64, midnight) and, when the log has amounts,
        ``amount`` (float64: the day's total), sorted by customer and date. Built on each access
        (at 100M rows some 3 GB): clv's own steps read :attr:`compact` instead."""
        return self.compact.to_frame()

    @property
    def has_amounts(self) -> bool:
        """Whether the log carries purchase amounts."""
        return self.compact.has_amounts

    def fingerprint(self) -> dict[str, Any]:
        """Return row count, customers, date range and a SHA-256 of the cleaned log."""
        digest = hashlib.sha256()
        rows = len(self.compact.frame)
        for start in range(0, rows, FINGERPRINT_CHUNK_ROWS):  # bounded memory
            part = self.compact.to_frame(slice(start, start + FINGERPRINT_CHUNK_ROWS))
            digest.update(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes())
        return {
            "transactions": rows,
            "customers": self.report.customers,
            "first_date": self.report.first_date,
            "last_date": self.report.last_date,
            "sha256": digest.hexdigest(),
        }

    def first_customers(self, n: int) -> TransactionLog:
        """The log of the first ``n`` customers by id, e.g. for an input example; the report is
        the full log's."""
        frame = self.compact.frame
        codes = frame[CUSTOMER].to_numpy()
        head = (
            frame.iloc[: int(np.searchsorted(codes, n))]  # ordered: the first rows
            if self.compact.ordered
            else frame[codes < n]
        )
        return TransactionLog(replace(self.compact, frame=head.reset_index(drop=True)), self.report)


#: Day-number column of the compact log.
DAY = "day"
_EPOCH = pd.Timestamp("1970-01-01")
_NS_PER_DAY = 86_400_000_000_000


def day_number(day: pd.Timestamp) -> int:
    """Days since 1970-01-01 of a day (the time of day is dropped)."""
    return int((pd.Timestamp(day).normalize() - _EPOCH).days)


def day_start(days: np.ndarray) -> np.ndarray:
    """Midnight timestamps (datetime64[ns]) of day numbers."""
    return (np.asarray(days).astype("int64") * _NS_PER_DAY).astype("datetime64[ns]")


@dataclass(frozen=True)
class Compact:
    """A log as clv's SQL reads it: ``customer_id`` (int32 codes), ``day`` (int32 days since
    1970-01-01), ``amount`` when present and, when rows are ordered by customer and day,
    ``gap`` (days since the customer's previous purchase; −1 on the first).

    ``ids`` (an Arrow array, in sorted order) holds each code's text id. About 20 bytes a row
    with amounts, and the integer group-bys run about twice as fast as on text ids and
    timestamps.
    """

    frame: pd.DataFrame
    ids: Any
    ordered: bool

    @property
    def has_amounts(self) -> bool:
        """Whether the log has amounts."""
        return AMOUNT in self.frame.columns

    def to_frame(self, rows: slice | None = None) -> pd.DataFrame:
        """The readable table (text ids, timestamps, amounts) of all rows or a slice of them."""
        part = self.frame if rows is None else self.frame.iloc[rows]
        ids = self.ids.take(part[CUSTOMER].to_numpy()).to_pandas().astype("str")
        out = pd.DataFrame({CUSTOMER: ids, DATE: day_start(part[DAY].to_numpy())})
        if self.has_amounts:
            out[AMOUNT] = part[AMOUNT].to_numpy()
        return out

    def finish(self, table: pd.DataFrame) -> pd.DataFrame:
        """A per-customer result of a ``GROUP BY customer_id``: text ids, sorted by id, without
        ``monetary_value`` when the log has no amounts."""
        table = table.sort_values(CUSTOMER, ignore_index=True)
        table[CUSTOMER] = self.ids.take(table[CUSTOMER].to_numpy()).to_pandas().astype("str")
        if not self.has_amounts and "monetary_value" in table:
            table = table.drop(columns="monetary_value")
        return table


def _customer_codes(ids: pd.Series | Any) -> tuple[np.ndarray, Any, bool]:
    """Codes of the customer ids (a Series or an Arrow array, in sorted id order), the id of
    each code as an Arrow array, and whether the ids were already sorted (then codes are run
    numbers: no hashing)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(ids, pd.Series):
        array = pa.chunked_array([pa.array(ids.astype("str"), type=pa.large_string())])
    else:
        array = ids if isinstance(ids, pa.ChunkedArray) else pa.chunked_array([ids])
    if len(array) < 2 or pc.all(pc.less_equal(array[:-1], array[1:])).as_py():
        change = pc.not_equal(array[:-1], array[1:]).to_numpy(zero_copy_only=False)
        starts = np.concatenate([np.ones(min(len(array), 1), dtype=bool), change.astype(bool)])
        del change
        codes = np.cumsum(starts, dtype=np.int32) - 1
        return codes, array.filter(pa.array(starts)), True
    codes, uniques = pd.factorize(array.to_pandas().astype("str"), sort=True)
    return codes.astype(np.int32), pa.array(np.asarray(uniques, dtype=object)), False


def _day_numbers(dates: pd.Series, chunk: int = 10_000_000) -> np.ndarray:
    """Day numbers of midnight timestamps as int32, converted in chunks (no int64 copy of a
    long log)."""
    values = dates.to_numpy(dtype="datetime64[ns]").view("int64")
    out = np.empty(len(values), dtype=np.int32)
    for start in range(0, len(values), chunk):
        part = values[start : start + chunk] - _EPOCH.value
        out[start : start + chunk] = part // _NS_PER_DAY
    return out


def compact(transactions: pd.DataFrame | Compact) -> Compact:
    """The compact view of a log frame (:class:`Compact`); a compact view is returned as is."""
    if isinstance(transactions, Compact):
        return transactions
    amounts = transactions[AMOUNT].to_numpy(dtype=float) if AMOUNT in transactions.columns else None
    codes, ids, sorted_ids = _customer_codes(transactions[CUSTOMER])
    return _assemble(codes, ids, sorted_ids, _day_numbers(transactions[DATE]), amounts)


def _assemble(
    codes: np.ndarray, ids: Any, sorted_ids: bool, days: np.ndarray, amounts: np.ndarray | None
) -> Compact:
    columns: dict[str, Any] = {CUSTOMER: codes, DAY: days}
    if amounts is not None:
        columns[AMOUNT] = amounts
    same = codes[1:] == codes[:-1]
    step = np.diff(days)
    ordered = sorted_ids and not np.any(step[same] < 0)
    if ordered:
        columns["gap"] = np.concatenate([[-1], np.where(same, step, -1)]).astype(np.int32)
    del same, step
    return Compact(pd.DataFrame(columns, copy=False), ids, ordered)


def sorted_arrays(log: Compact) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Customer codes, day numbers and amounts (None without) of a compact log, ordered by
    customer and day (as they are for a cleaned log)."""
    frame = log.frame
    codes, days = frame[CUSTOMER].to_numpy(), frame[DAY].to_numpy()
    amounts = frame[AMOUNT].to_numpy() if log.has_amounts else None
    if log.ordered:
        return codes, days, amounts
    order = np.lexsort((days, codes))
    return codes[order], days[order], None if amounts is None else amounts[order]


def _embedded_path(name: str) -> Path:
    file = {"cdnow": "CDNOW_master.txt", "cdnow-sample": "CDNOW_sample.txt"}[name]
    spec = find_spec("lifetimes")  # locates the package without importing it (slow, noisy)
    if spec is None or spec.origin is None:
        raise DataValidationError(
            "The embedded CDNOW data ship with lifetimes, which is not installed."
        )
    return Path(spec.origin).parent / "datasets" / file


def read_embedded(name: str) -> pd.DataFrame:
    """Read one of the raw CDNOW logs that ship inside ``lifetimes``.

    Parameters
    ----------
    name : {"cdnow", "cdnow-sample"}
        ``cdnow``: the full log (23,570 customers, 1997-01-01 .. 1998-06-30);
        ``cdnow-sample``: the 2,357-customer sample used in the BTYD papers.

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id`` (str), ``date`` (str, YYYYMMDD), ``amount`` (float).
    """
    if name not in EMBEDDED_DATASETS:
        raise DataValidationError(
            f"Unknown embedded data set {name!r}; use one of {EMBEDDED_DATASETS}."
        )
    path = _embedded_path(name)
    if name == "cdnow":
        raw = pd.read_csv(path, sep=r"\s+", dtype={"customer_id": "str", "date": "str"})
        return raw.rename(columns={"dollar_value": AMOUNT})[[CUSTOMER, DATE, AMOUNT]]
    raw = pd.read_csv(
        path,
        sep=r"\s+",
        header=None,
        names=[CUSTOMER, "customer_index", DATE, "number_of_cds", AMOUNT],
        dtype={CUSTOMER: "str", DATE: "str"},
    )
    return raw[[CUSTOMER, DATE, AMOUNT]]


def read_transactions(source: str | Path, config: DataConfig) -> tuple[pd.DataFrame, DataConfig]:
    """Read a raw log from a file or an embedded data set.

    Returns the raw frame and the column settings that apply to it: an embedded data set has its
    own column names and date format, whatever the config says; and a log without the default
    amount column (``amount``) is read without amounts (purchase models only), while an amount
    column named explicitly must exist.
    """
    if str(source) in EMBEDDED_DATASETS:
        embedded = config.model_copy(
            update={
                "customer_col": CUSTOMER,
                "date_col": DATE,
                "amount_col": AMOUNT if config.amount_col is not None else None,
                "date_format": "%Y%m%d",
            }
        )
        return read_embedded(str(source)), embedded
    frame = read_table(
        source, string_columns=(config.customer_col, config.date_col), delimiter=config.delimiter
    )
    return frame, _for_columns(config, frame.columns)


def _for_columns(config: DataConfig, columns: Any) -> DataConfig:
    """The default amount column is optional: a log without it is read without amounts
    (purchase models only); an amount column named explicitly must exist."""
    default_amount = DataConfig.model_fields["amount_col"].default
    if config.amount_col == default_amount and default_amount not in columns:
        return config.model_copy(update={"amount_col": None})
    return config


def _example(values: pd.Series, mask: np.ndarray) -> str:
    position = int(np.flatnonzero(mask)[0])
    return f"row {position + 1} ({values.iloc[position]!r})"


def _require_columns(frame: pd.DataFrame, config: DataConfig) -> None:
    needed = {"customer": config.customer_col, "date": config.date_col}
    if config.amount_col is not None:
        needed["amount"] = config.amount_col
    missing = [f"{col!r} ({role})" for role, col in needed.items() if col not in frame.columns]
    if missing:
        raise DataValidationError(
            f"Missing column(s) {', '.join(missing)}; the log has {list(frame.columns)}. "
            "Map your columns with --customer-col / --date-col / --amount-col."
        )


def _customer_ids(values: pd.Series, column: str) -> pd.Series:
    if pd.api.types.is_float_dtype(values):
        finite = values.dropna()
        if (finite == np.round(finite)).all():
            values = values.astype("Int64")
    ids = values.astype("str").where(values.notna())
    ids = ids.str.strip()
    missing = (ids.isna() | (ids == "")).to_numpy()
    if missing.any():
        raise DataValidationError(
            f"Column {column!r}: {int(missing.sum()):,} row(s) have no customer id, e.g. "
            f"{_example(values, missing)}. Fill or remove them before training."
        )
    return ids.astype("str")


#: The days a timestamp (datetime64[ns]) can hold: 1677-09-22 .. 2262-04-11.
_FIRST_DAY = pd.Timestamp.min.ceil("D")
_LAST_DAY = pd.Timestamp.max.floor("D")


def _dates(
    values: pd.Series, column: str, fmt: str | None, zone: str
) -> tuple[pd.Series, np.ndarray]:
    """Parsed days (midnight, in ``zone``), and which rows hold a date no timestamp can hold
    (NaT in the result)."""
    missing = values.isna().to_numpy()
    if missing.any():
        raise DataValidationError(
            f"Column {column!r}: {int(missing.sum()):,} row(s) have no date, e.g. "
            f"{_example(values, missing)}. Every purchase needs a date."
        )
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        text = values.astype("str").str.strip()
        parsed = _parse_dates(text, fmt)
        bad = parsed.isna().to_numpy()
        if bad.any():
            hint = f"expected format {fmt!r}" if fmt else "set --date-format (e.g. %Y-%m-%d)"
            raise DataValidationError(
                f"Column {column!r}: {int(bad.sum()):,} row(s) have a date that cannot be parsed, "
                f"e.g. {_example(values, bad)}; {hint}."
            )
    aware = isinstance(parsed.dtype, pd.DatetimeTZDtype)
    first, last = (d.tz_localize("UTC") if aware else d for d in (_FIRST_DAY, _LAST_DAY))
    outside = ((parsed < first) | (parsed > last)).to_numpy()
    if outside.any():
        parsed = parsed.where(~outside, first)  # a placeholder: these rows are excluded
    if aware:
        try:
            parsed = parsed.dt.tz_convert(zone).dt.tz_localize(None)
        except Exception as exc:  # an unknown zone name
            raise DataValidationError(f"Unknown timezone {zone!r}: {exc}") from None
    return parsed.astype("datetime64[ns]").dt.normalize(), outside


def _parse_dates(text: pd.Series, fmt: str | None) -> pd.Series:
    """Parse with ``fmt``, else with the format inferred from the first value, else value by value.

    Values that carry different UTC offsets are parsed as instants (UTC) to be converted later.
    """
    formats = [fmt] if fmt else [None, "mixed"]
    for attempt in formats:
        try:
            parsed = pd.to_datetime(text, format=attempt, errors="coerce")
        except (ValueError, TypeError):  # mixed UTC offsets
            parsed = pd.to_datetime(text, format=attempt, errors="coerce", utc=True)
        if not parsed.isna().any():
            break
    return parsed


def _amounts(values: pd.Series, column: str) -> pd.Series:
    numeric = pd.to_numeric(values, errors="coerce").astype("float64")
    missing = values.isna().to_numpy()
    if missing.any():
        raise DataValidationError(
            f"Column {column!r}: {int(missing.sum()):,} row(s) have no amount, e.g. "
            f"{_example(values, missing)}. Fill them, or train without amounts "
            "(amount_col: null) to fit purchase models only."
        )
    bad = numeric.isna().to_numpy()  # not a number at all; ±inf is an implausible amount
    if bad.any():
        raise DataValidationError(
            f"Column {column!r}: {int(bad.sum()):,} row(s) have a non-numeric amount, e.g. "
            f"{_example(values, bad)}. Amounts must be plain numbers (no currency signs)."
        )
    return numeric


#: Amounts beyond this (in absolute value) are implausible in any currency, and sums of them
#: lose cents in double precision.
MAX_ABS_AMOUNT = 1e15
#: Examples of implausible rows kept for the cleaning report.
EXAMPLES = 3


@dataclass(frozen=True)
class _Counts:
    """What screening did to a raw log (or to one chunk of it); chunks' counts add up."""

    rows_read: int = 0
    after: int = 0
    negative: int = 0
    negative_total: float = 0.0
    zero: int = 0
    used: int = 0
    implausible_dates: int = 0
    implausible_amounts: int = 0
    examples: tuple[str, ...] = ()

    def __add__(self, other: _Counts) -> _Counts:
        numbers = [a + b for a, b in zip(astuple(self)[:-1], astuple(other)[:-1], strict=True)]
        return _Counts(*numbers, (self.examples + other.examples)[:EXAMPLES])


def _implausible(
    what: str, values: pd.Series, ids: pd.Series, mask: np.ndarray, offset: int
) -> list[str]:
    """Examples ("row 12: customer '7', date '29990101'") of the rows in ``mask``."""
    rows = np.flatnonzero(mask)[:EXAMPLES]
    shown = [values.iloc[r] for r in rows]
    shown = [repr(v) if isinstance(v, str) else str(v) for v in shown]
    return [
        f"row {offset + r + 1:,}: customer {ids.iloc[r]!r}, {what} {v}"
        for r, v in zip(rows, shown, strict=True)
    ]


def _refuse(kind: str, count: int, examples: list[str] | tuple[str, ...], rule: str) -> None:
    raise DataValidationError(
        f"{count:,} row(s) have an implausible {kind} ({rule}), e.g. {'; '.join(examples)}. "
        "Fix them upstream, or set data.implausible: exclude to leave them out (counted in the "
        "cleaning report); the rule's bounds are data.date_window_years and "
        "data.max_amount_ratio."
    )


def _screen(
    raw: pd.DataFrame, config: DataConfig, as_of: pd.Timestamp | None, offset: int = 0
) -> tuple[pd.DataFrame, _Counts]:
    """Check and filter raw rows: rules 1–3 and the row-wise part of rule 4 of the module
    docstring (no merging yet); the rows kept and the counts. ``offset`` is the number of rows
    before ``raw`` in the file (for the row numbers of examples)."""
    _require_columns(raw, config)
    ids = _customer_ids(raw[config.customer_col], config.customer_col)
    dates, outside = _dates(
        raw[config.date_col], config.date_col, config.date_format, config.timezone
    )
    frame = pd.DataFrame({CUSTOMER: ids, DATE: dates})
    has_amounts = config.amount_col is not None
    absurd = np.zeros(len(frame), dtype=bool)
    if has_amounts:
        frame[AMOUNT] = _amounts(raw[config.amount_col], config.amount_col).to_numpy()
        with np.errstate(invalid="ignore"):
            absurd = ~(np.abs(frame[AMOUNT].to_numpy()) <= MAX_ABS_AMOUNT) & ~outside
    rows_read = len(frame)
    examples = _implausible("date", raw[config.date_col], ids, outside, offset)
    if has_amounts:
        examples += _implausible("amount", raw[config.amount_col], ids, absurd, offset)
    if config.implausible == "error":
        if outside.any():
            _refuse("date", int(outside.sum()), examples, "outside 1677-09-22 .. 2262-04-11")
        if absurd.any():
            _refuse(
                "amount", int(absurd.sum()), examples, f"not finite or above {MAX_ABS_AMOUNT:g}"
            )

    keep = ~(outside | absurd)
    after = np.zeros(rows_read, dtype=bool)
    if as_of is not None:
        after = (frame[DATE] > pd.Timestamp(as_of).normalize()).to_numpy() & keep
        keep &= ~after
    negative = zero = np.zeros(rows_read, dtype=bool)
    negative_total = 0.0
    if has_amounts:
        amounts = frame[AMOUNT].to_numpy()
        negative = (amounts < 0) & keep
        zero = (amounts == 0) & keep
        negative_total = float(amounts[negative].sum())
        if negative.any() and config.negative_amounts == "error":
            raise DataValidationError(
                f"Column {config.amount_col!r}: {int(negative.sum()):,} row(s) have a negative "
                f"amount, e.g. {_example(raw[config.amount_col], negative)}. Remove returns "
                "upstream or set data.negative_amounts: exclude."
            )
        keep &= ~negative
        if config.zero_amounts == "exclude":
            keep &= ~zero
    used = frame.loc[keep]
    counts = _Counts(
        rows_read,
        int(after.sum()),
        int(negative.sum()),
        negative_total,
        int(zero.sum()),
        len(used),
        int(outside.sum()),
        int(absurd.sum()),
        tuple(examples[:EXAMPLES]),
    )
    return used, counts


def _bulk_rule(
    used: pd.DataFrame | Path, counts: _Counts, config: DataConfig
) -> tuple[str, str, _Counts]:
    """The part of rule 4 that needs the whole log: dates far outside its bulk, amounts far
    above its median. Returns the SQL condition of the rows to keep (``TRUE`` for all), the
    rule's description, and the counts with those rows moved from used to implausible."""
    tx = used if isinstance(used, pd.DataFrame) else used / "[0-9]*.parquet"
    has_amounts = config.amount_col is not None
    share = min(0.25, max(0.01, 5 / max(counts.used, 1)))
    median = f"median({AMOUNT}) FILTER (WHERE {AMOUNT} > 0)" if has_amounts else "NULL"
    stats = query(
        f"SELECT quantile_disc({DATE}, {share}) AS lo, quantile_disc({DATE}, {1 - share}) AS hi, "
        f"{median} AS median FROM tx",
        tx=tx,
    ).iloc[0]
    conditions, rules = [], []
    if config.date_window_years is not None:
        reach = pd.Timedelta(days=round(config.date_window_years * 365.25))
        lo, hi = pd.Timestamp(stats["lo"]) - reach, pd.Timestamp(stats["hi"]) + reach
        conditions.append(
            f"({DATE} < TIMESTAMP '{lo:%Y-%m-%d}' OR {DATE} > TIMESTAMP '{hi:%Y-%m-%d}')"
        )
        rules.append(
            f"dates outside {lo:%Y-%m-%d} .. {hi:%Y-%m-%d} ({config.date_window_years:g} years "
            f"around the bulk of the log, {pd.Timestamp(stats['lo']):%Y-%m-%d} .. "
            f"{pd.Timestamp(stats['hi']):%Y-%m-%d})"
        )
    if has_amounts and config.max_amount_ratio is not None and pd.notna(stats["median"]):
        limit = config.max_amount_ratio * float(stats["median"])
        conditions.append(f"({AMOUNT} > {limit!r})")
        rules.append(
            f"amounts above {limit:,.2f} ({config.max_amount_ratio:g} × the median positive "
            f"amount {float(stats['median']):,.2f})"
        )
    rule = "; ".join(rules)
    if not conditions:
        return "TRUE", rule, counts
    date_rule = conditions[0] if config.date_window_years is not None else "FALSE"
    either = " OR ".join(conditions)
    found = query(
        f"SELECT count(*) FILTER (WHERE {date_rule}) AS dates, "
        f"count(*) FILTER (WHERE ({either}) AND NOT {date_rule}) AS amounts FROM tx",
        tx=tx,
    ).iloc[0]
    dates, amounts = int(found["dates"]), int(found["amounts"])
    if not dates + amounts:
        return "TRUE", rule, counts
    amount = f", {AMOUNT}" if has_amounts else ""
    rows = query(
        f"SELECT {CUSTOMER}, {DATE}{amount} FROM tx WHERE {either} ORDER BY {DATE} LIMIT 3",
        tx=tx,
    )
    examples = tuple(
        f"customer {row[CUSTOMER]!r} on {pd.Timestamp(row[DATE]):%Y-%m-%d}"
        + (f", amount {row[AMOUNT]!r}" if has_amounts else "")
        for _, row in rows.iterrows()
    )
    if config.implausible == "error":
        _refuse(
            "date or amount" if dates and amounts else "date" if dates else "amount",
            dates + amounts,
            examples,
            rule,
        )
    moved = replace(
        counts,
        used=counts.used - dates - amounts,
        implausible_dates=counts.implausible_dates + dates,
        implausible_amounts=counts.implausible_amounts + amounts,
        examples=(counts.examples + examples)[:EXAMPLES],
    )
    return f"NOT ({either})", rule, moved


def _finish(used: pd.DataFrame | Path, counts: _Counts, config: DataConfig) -> TransactionLog:
    """Apply the whole-log part of rule 4, merge same-day purchases of the screened rows (a
    frame, or Parquet chunks in a folder) and write the cleaning report with the counts."""
    if counts.used == 0:
        raise DataValidationError(
            f"No purchase is left after cleaning ({counts.rows_read:,} rows read, "
            f"{counts.after:,} after the as-of day, {counts.negative:,} negative, "
            f"{counts.implausible_dates + counts.implausible_amounts:,} implausible). "
            "Check --as-of and the amount policies."
        )
    keep, rule, counts = _bulk_rule(used, counts, config)
    daily = _merge_same_day(used, config.amount_col is not None, keep)
    days = daily.frame[DAY]
    report = CleaningReport(
        rows_read=counts.rows_read,
        rows_after_as_of=counts.after,
        negative_amount_rows=counts.negative,
        negative_amount_total=counts.negative_total,
        negative_amount_policy=config.negative_amounts,
        zero_amount_rows=counts.zero,
        zero_amount_policy=config.zero_amounts,
        rows_used=counts.used,
        same_day_merged=int(counts.used - len(days)),
        transactions=len(days),
        customers=len(daily.ids),
        first_date=str(day_start(days.min()).astype("datetime64[D]")),
        last_date=str(day_start(days.max()).astype("datetime64[D]")),
        timezone=config.timezone,
        has_amounts=config.amount_col is not None,
        implausible_policy=config.implausible,
        implausible_date_rows=counts.implausible_dates,
        implausible_amount_rows=counts.implausible_amounts,
        implausible_rule=rule,
        implausible_examples=counts.examples,
    )
    return TransactionLog(daily, report)


def clean_transactions(
    raw: pd.DataFrame, config: DataConfig, as_of: pd.Timestamp | None = None
) -> TransactionLog:
    """Validate a raw log and clean it into one row per customer and purchase day.

    Parameters
    ----------
    raw : pandas.DataFrame
        The log with the user's column names.
    config : DataConfig
        Column names, date format, timezone and the policies for negative and zero amounts.
    as_of : pandas.Timestamp, optional
        Rows dated after this day are ignored (and counted).

    Returns
    -------
    TransactionLog

    Raises
    ------
    DataValidationError
        On an empty log, missing columns, missing ids, missing or unparsable dates, missing or
        non-numeric amounts, negative amounts under the 'error' policy, or nothing left to use.
    """
    if len(raw) == 0:
        raise DataValidationError(EMPTY_LOG)
    used, counts = _screen(raw, config, as_of)
    return _finish(used, counts, config)


#: Rows per chunk when a Parquet log is read in pieces (about 0.3 GB of raw rows in memory).
PARQUET_CHUNK_ROWS = 5_000_000


def clean_parquet(
    path: str | Path,
    config: DataConfig,
    as_of: pd.Timestamp | None = None,
    progress: Callable[[int, int], None] | None = None,
    chunk_rows: int = PARQUET_CHUNK_ROWS,
) -> TransactionLog:
    """Clean a Parquet log chunk by chunk: the same rules as :func:`clean_transactions`, but
    only the mapped columns of ``chunk_rows`` rows are in memory at a time.

    Screened chunks go to a temporary Parquet folder; DuckDB merges same-day purchases and sorts
    the result from there (spilling to disk under its memory limit, see
    :func:`clv.tables.duckdb_settings`). ``progress(rows_done, rows_total)`` is called after
    each chunk. A validation error names the rows of the chunk where it was found (later chunks
    are not checked).
    """

    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise DataValidationError(f"{path} does not exist.")
    try:
        source = pq.ParquetFile(path)
    except (OSError, ValueError) as exc:
        raise DataValidationError(f"{path} could not be read as parquet: {exc}") from None
    names = source.schema_arrow.names
    config = _for_columns(config, names)
    wanted = [config.customer_col, config.date_col, config.amount_col]
    columns = [c for c in dict.fromkeys(wanted) if c is not None and c in names]
    _require_columns(pd.DataFrame(columns=columns), config)
    total = source.metadata.num_rows
    if total == 0:
        raise DataValidationError(EMPTY_LOG)
    if total <= chunk_rows:  # one chunk: clean it in memory
        raw = source.read(columns=columns).to_pandas()
        return clean_transactions(raw, config, as_of)
    counts = _Counts()
    with private_temp_dir("clv-clean") as folder:
        for number, batch in enumerate(source.iter_batches(chunk_rows, columns=columns)):
            start = counts.rows_read
            try:
                used, part = _screen(batch.to_pandas(), config, as_of, start)
            except DataValidationError as exc:
                raise DataValidationError(
                    f"{exc} (in rows {start + 1:,}–{start + batch.num_rows:,} of {path.name}; "
                    "row numbers in the message count from the start of those rows)"
                ) from None
            used.to_parquet(Path(folder) / f"{number:06d}.parquet", index=False)
            counts += part
            del used
            if progress is not None:
                progress(counts.rows_read, total)
        return _finish(Path(folder), counts, config)


def _merge_same_day(used: pd.DataFrame | Path, has_amounts: bool, keep: str = "TRUE") -> Compact:
    """Merge a customer's purchases on the same day into one transaction (amounts summed).

    ``used`` is a frame or a folder of Parquet chunks. DuckDB sorts by customer and day and
    returns day numbers, so the compact view is built from its Arrow result directly — for
    chunks on disk through a Parquet file, so that DuckDB's memory is released first — without
    a pandas copy of the log.
    """
    import pyarrow as pa

    amount = f", SUM({AMOUNT})::DOUBLE AS {AMOUNT}" if has_amounts else ""
    sql = (
        f"SELECT {CUSTOMER}::VARCHAR AS {CUSTOMER}, "
        f"date_diff('day', TIMESTAMP '1970-01-01', {DATE})::INTEGER AS {DAY}{amount} "
        f"FROM tx WHERE {keep} GROUP BY {CUSTOMER}, {DAY} ORDER BY {CUSTOMER}, {DAY}"
    )
    if isinstance(used, pd.DataFrame):
        table = query_arrow(sql, tx=used)
    else:
        import pyarrow.parquet as pq

        merged = query_to_parquet(sql, used / "merged.parquet", tx=used / "[0-9]*.parquet")
        table = pq.read_table(merged)
    days = table.column(DAY).to_numpy()
    amounts = table.column(AMOUNT).to_numpy() if has_amounts else None
    ids = table.column(CUSTOMER)
    del table
    codes, uniques, sorted_ids = _customer_codes(ids)  # sorted by the ORDER BY: run numbers
    del ids
    return _assemble(codes, uniques.cast(pa.large_string()), sorted_ids, days, amounts)


def load_transactions(
    source: str | Path,
    config: DataConfig,
    as_of: pd.Timestamp | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TransactionLog:
    """Read and clean a log in one call: Parquet files chunk by chunk (:func:`clean_parquet`),
    CSV files and embedded data sets whole.

    See :func:`read_transactions` and :func:`clean_transactions` for parameters and errors.
    """
    if str(source) not in EMBEDDED_DATASETS and is_parquet(source):
        return clean_parquet(source, config, as_of, progress)
    raw, effective = read_transactions(source, config)
    return clean_transactions(raw, effective, as_of=as_of)


def read_customer_list(path: str | Path, customer_col: str) -> pd.DataFrame:
    """Read a list of customers to score; extra columns are kept as attributes.

    Returns
    -------
    pandas.DataFrame
        With the id column renamed to ``customer_id`` (str).

    Raises
    ------
    DataValidationError
        If the id column is missing, an id is missing, or an id is listed twice.
    """
    frame = read_table(path, string_columns=(customer_col,))
    if customer_col not in frame.columns:
        raise DataValidationError(
            f"Customer list {path}: missing column {customer_col!r}; it has {list(frame.columns)}. "
            "Set --customer-col."
        )
    ids = _customer_ids(frame[customer_col], customer_col)
    duplicated = ids.duplicated().to_numpy()
    if duplicated.any():
        raise DataValidationError(
            f"Customer list {path}: {int(duplicated.sum()):,} id(s) in {customer_col!r} are "
            f"listed more than once, e.g. {_example(ids, duplicated)}. List each customer once."
        )
    out = frame.drop(columns=[customer_col])
    out.insert(0, CUSTOMER, ids.to_numpy())
    return out


def load_surveys(path: str | Path | None, config: DataConfig | None = None) -> pd.DataFrame | None:
    """Read and check a survey table (:func:`read_surveys`), its columns mapped by ``config``
    (``survey_customer_col``, ``survey_date_col``, ``survey_nps_col``); None without a path."""
    if path is None:
        return None
    config = config or DataConfig()
    mapping = {
        config.survey_customer_col or config.customer_col: (CUSTOMER, "survey_customer_col"),
        config.survey_date_col: ("date", "survey_date_col"),
        config.survey_nps_col: ("nps", "survey_nps_col"),
    }
    frame = read_table(path, string_columns=(config.survey_customer_col or config.customer_col,))
    required = list(mapping)[:2]
    missing = [f"{c!r} (data.{mapping[c][1]})" for c in required if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"Survey table {path}: missing column(s) {', '.join(missing)}; it has "
            f"{list(frame.columns)}. Map them with --survey-col ROLE=COLUMN (e.g. "
            "--survey-col customer_id=cust) or the config keys named."
        )
    renamed = {c: name for c, (name, _) in mapping.items() if c in frame.columns and c != name}
    return read_surveys(frame.rename(columns=renamed))


def load_costs(path: str | Path, customer_col: str, kpis: Any) -> pd.DataFrame:
    """Read an acquisition-cost table with its columns mapped by the ``kpis`` settings
    (``costs_customer_col`` — by default ``customer_col`` —, ``costs_channel_col``,
    ``costs_amount_col``) to ``customer_id``, ``channel`` and ``acquisition_cost``."""
    customer = kpis.costs_customer_col or customer_col
    frame = read_table(path, string_columns=(customer,))
    if kpis.costs_amount_col not in frame.columns:
        raise DataValidationError(
            f"Cost table {path}: missing column {kpis.costs_amount_col!r} (the cost; map it "
            f"with --cost-col acquisition_cost=COLUMN); it has {list(frame.columns)}."
        )
    if customer not in frame.columns and kpis.costs_channel_col not in frame.columns:
        raise DataValidationError(
            f"Cost table {path}: needs a customer column {customer!r} (--cost-col "
            f"customer_id=COLUMN) or a channel column {kpis.costs_channel_col!r} (--cost-col "
            f"channel=COLUMN); it has "
            f"{list(frame.columns)}."
        )
    mapping = {
        customer: CUSTOMER,
        kpis.costs_channel_col: "channel",
        kpis.costs_amount_col: "acquisition_cost",
    }
    return frame.rename(columns={c: n for c, n in mapping.items() if c in frame.columns})


def read_surveys(frame: pd.DataFrame, customer_col: str = CUSTOMER) -> pd.DataFrame:
    """Check a survey table: ``customer_id``, ``date``, ``nps`` (0–10) and/or SERVQUAL columns."""
    missing = [c for c in (customer_col, "date") if c not in frame]
    if missing:
        raise DataValidationError(
            f"Survey table: missing column(s) {missing}; it has {list(frame.columns)}."
        )
    out = frame.rename(columns={customer_col: CUSTOMER}).copy()
    out[CUSTOMER] = out[CUSTOMER].astype("str")
    out["date"] = pd.to_datetime(out["date"], errors="coerce")
    bad = out["date"].isna().to_numpy()
    if bad.any():
        raise DataValidationError(
            f"Survey table: {int(bad.sum())} row(s) with a missing or unparsable date, e.g. row "
            f"{int(np.flatnonzero(bad)[0]) + 1}."
        )
    if "nps" in out:
        score = pd.to_numeric(out["nps"], errors="coerce")
        answered = out["nps"].notna().to_numpy()
        wrong = answered & ~(score.between(0, 10) & (score == np.round(score))).to_numpy()
        if wrong.any():
            rows = (np.flatnonzero(wrong)[:5] + 1).tolist()
            raise DataValidationError(
                f"Survey column 'nps': {int(wrong.sum())} answer(s) outside the whole numbers "
                f"0–10, at row(s) {rows} (e.g. {out['nps'].iloc[rows[0] - 1]!r}). "
                "Fix or remove them."
            )
        out["nps"] = score
    if "nps" not in out and not any(SERVQUAL_COLUMN.match(c) for c in out.columns):
        raise DataValidationError(
            "Survey table: no 'nps' column and no SERVQUAL columns "
            "(expectation_<dimension>, perception_<dimension>)."
        )
    return out


@dataclass(frozen=True)
class RunInputs:
    """What a training or evaluation run reads: the log (to ``train.as_of``), the customer
    attributes of ``train.customers`` and the survey table of ``data.surveys`` (None if unset)."""

    log: TransactionLog
    attributes: pd.DataFrame | None
    surveys: pd.DataFrame | None


def load_configured_log(
    config: Config, progress: Callable[[int, int], None] | None = None
) -> TransactionLog:
    """The cleaned log of ``data.transactions``, ignoring rows after ``train.as_of`` if set."""
    as_of = pd.Timestamp(config.train.as_of) if config.train.as_of else None
    return load_transactions(config.data.transactions, config.data, as_of=as_of, progress=progress)


def load_run_inputs(
    config: Config, progress: Callable[[int, int], None] | None = None
) -> RunInputs:
    """Read the log (reporting ``progress`` of a chunked read), customer attributes and surveys
    a run is configured with."""
    col = config.data.customer_col
    return RunInputs(
        log=load_configured_log(config, progress),
        attributes=read_customer_list(config.train.customers, col)
        if config.train.customers
        else None,
        surveys=load_surveys(config.data.surveys, config.data),
    )
