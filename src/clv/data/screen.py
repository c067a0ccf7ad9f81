"""Screening rules: which rows of a log are used, and the report that counts every one left out.

Read a transaction log, check it, and clean it into one row per customer and purchase day.

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

from dataclasses import astuple, dataclass

import numpy as np
import pandas as pd

from clv.config import DataConfig
from clv.data.compact import AMOUNT, CUSTOMER, DATE
from clv.errors import DataValidationError


def first_example(values: pd.Series, mask: np.ndarray) -> str:
    """The first row where ``mask`` holds and its value, for messages (``row 3 ('x')``)."""
    position = int(np.flatnonzero(mask)[0])
    return f"row {position + 1} ({values.iloc[position]!r})"


def require_columns(frame: pd.DataFrame, config: DataConfig) -> None:
    """Stop with the missing columns of ``config`` and the ones the table has."""
    needed = {"customer": config.customer_col, "date": config.date_col}
    if config.amount_col is not None:
        needed["amount"] = config.amount_col
    missing = [f"{col!r} ({role})" for role, col in needed.items() if col not in frame.columns]
    if missing:
        raise DataValidationError(
            f"Missing column(s) {', '.join(missing)}; the log has {list(frame.columns)}. "
            "Map your columns with --customer-col / --date-col / --amount-col."
        )


def customer_ids(values: pd.Series, column: str) -> pd.Series:
    """Customer ids as text; stop when some are missing, naming how many and an example."""
    if pd.api.types.is_float_dtype(values):
        finite = values.dropna()
        if (finite == np.round(finite)).all():
            values = values.astype("Int64")
    if pd.api.types.is_integer_dtype(values):  # Arrow's cast: ~6x faster than astype("str")
        missing = values.isna().to_numpy()
        ids = None
    else:
        ids = values.astype("str").where(values.notna()).str.strip()
        missing = (ids.isna() | (ids == "")).to_numpy()
    if missing.any():
        raise DataValidationError(
            f"Column {column!r}: {int(missing.sum()):,} row(s) have no customer id, e.g. "
            f"{first_example(values, missing)}. Fill or remove them before training."
        )
    return _integer_text(values) if ids is None else ids.astype("str")


def _integer_text(values: pd.Series) -> pd.Series:
    """Integer ids (without missing values) as pandas' text dtype, through Arrow."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.cast(pa.Array.from_pandas(values), pa.large_string())
    dtype = pd.Series([], dtype="str").dtype
    return text.to_pandas(types_mapper={pa.large_string(): dtype}.get).set_axis(values.index)


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
            f"{first_example(values, missing)}. Every purchase needs a date."
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
                f"e.g. {first_example(values, bad)}; {hint}."
            )
    aware = isinstance(parsed.dtype, pd.DatetimeTZDtype)
    first, last = (d.tz_localize("UTC") if aware else d for d in (_FIRST_DAY, _LAST_DAY))
    outside = ((parsed < first) | (parsed > last)).to_numpy()
    if outside.any():
        parsed = parsed.where(~outside, first)  # a placeholder: these rows are excluded
    if aware:
        try:
            parsed = parsed.dt.tz_convert(zone).dt.tz_localize(None)
        except (KeyError, ValueError, TypeError) as exc:  # an unknown zone (a KeyError)
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
            f"{first_example(values, missing)}. Fill them, or train without amounts "
            "(amount_col: null) to fit purchase models only."
        )
    bad = numeric.isna().to_numpy()  # not a number at all; ±inf is an implausible amount
    if bad.any():
        raise DataValidationError(
            f"Column {column!r}: {int(bad.sum()):,} row(s) have a non-numeric amount, e.g. "
            f"{first_example(values, bad)}. Amounts must be plain numbers (no currency signs)."
        )
    return numeric


#: Amounts beyond this (in absolute value) are implausible in any currency, and sums of them
#: lose cents in double precision.
MAX_ABS_AMOUNT = 1e15


#: Examples of implausible rows kept for the cleaning report.
EXAMPLES = 3


@dataclass(frozen=True)
class RowCounts:
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

    def __add__(self, other: RowCounts) -> RowCounts:
        numbers = [a + b for a, b in zip(astuple(self)[:-1], astuple(other)[:-1], strict=True)]
        return RowCounts(*numbers, (self.examples + other.examples)[:EXAMPLES])


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


def refuse(kind: str, count: int, examples: list[str] | tuple[str, ...], rule: str) -> None:
    """Stop the run on implausible rows (``data.implausible: error``), naming the rule, the
    count and examples."""
    raise DataValidationError(
        f"{count:,} row(s) have an implausible {kind} ({rule}), e.g. {'; '.join(examples)}. "
        "Fix them upstream, or set data.implausible: exclude to leave them out (counted in the "
        "cleaning report); the rule's bounds are data.date_window_years and "
        "data.max_amount_ratio."
    )


def screen_rows(
    raw: pd.DataFrame, config: DataConfig, as_of: pd.Timestamp | None, offset: int = 0
) -> tuple[pd.DataFrame, RowCounts]:
    """Check and filter raw rows: rules 1–3 and the row-wise part of rule 4 of the module
    docstring (no merging yet); the rows kept and the counts. ``offset`` is the number of rows
    before ``raw`` in the file (for the row numbers of examples)."""
    require_columns(raw, config)
    ids = customer_ids(raw[config.customer_col], config.customer_col)
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
            refuse("date", int(outside.sum()), examples, "outside 1677-09-22 .. 2262-04-11")
        if absurd.any():
            refuse("amount", int(absurd.sum()), examples, f"not finite or above {MAX_ABS_AMOUNT:g}")

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
                f"amount, e.g. {first_example(raw[config.amount_col], negative)}. Remove returns "
                "upstream or set data.negative_amounts: exclude."
            )
        keep &= ~negative
        if config.zero_amounts == "exclude":
            keep &= ~zero
    used = frame.loc[keep]
    counts = RowCounts(
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
