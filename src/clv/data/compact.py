"""The compact log: int32 customer codes and day numbers, what clv's SQL reads.

Clean logs are held this way (16 bytes a row with amounts); :meth:`Compact.to_frame` gives
back the readable table. Day numbers count days since 1970-01-01.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

#: Column names used inside clv, whatever the user's log calls them.
CUSTOMER, DATE, AMOUNT = "customer_id", "date", "amount"


#: Day-number column of the compact log.
DAY = "day"


_EPOCH = pd.Timestamp("1970-01-01")


_NS_PER_DAY = 86_400_000_000_000


def day_number(day: pd.Timestamp) -> int:
    """Days since 1970-01-01 of a day (the time of day is dropped)."""
    return int((pd.Timestamp(day).normalize() - _EPOCH).days)


def position(values: np.ndarray, value: int, side: Literal["left", "right"] = "left") -> int:
    """Where ``value`` goes in the sorted ``values`` (:func:`numpy.searchsorted`), asked in their
    dtype: NumPy compares an int32 array with a Python or int64 value by converting the whole
    array to int64 (0.78 GB for the 100M-row log's codes)."""
    return int(np.searchsorted(values, values.dtype.type(value), side))


def day_start(days: np.ndarray) -> np.ndarray:
    """Midnight timestamps (datetime64[ns]) of day numbers."""
    return (np.asarray(days).astype("int64") * _NS_PER_DAY).astype("datetime64[ns]")


@dataclass(frozen=True)
class Compact:
    """A log as clv's SQL reads it: ``customer_id`` (int32 codes), ``day`` (int32 days since
    1970-01-01) and ``amount`` when present; ``ordered`` when the rows are in customer and day
    order (a cleaned log's are), which lets a query read each purchase's ``gap`` (days since
    the customer's previous purchase; −1 on the first) without a window function
    (:meth:`per_customer` with ``gaps``).

    ``ids`` (an Arrow array, in sorted order) holds each code's text id. 16 bytes a row with
    amounts, and the integer group-bys run about twice as fast as on text ids and timestamps.
    """

    frame: pd.DataFrame
    ids: Any
    ordered: bool

    @property
    def has_amounts(self) -> bool:
        """Whether the log has amounts."""
        return AMOUNT in self.frame.columns

    def to_frame(self) -> pd.DataFrame:
        """The readable table (text ids, timestamps, amounts)."""
        part = self.frame
        ids = self.ids.take(part[CUSTOMER].to_numpy()).to_pandas().astype("str")
        out = pd.DataFrame({CUSTOMER: ids, DATE: day_start(part[DAY].to_numpy())})
        if self.has_amounts:
            out[AMOUNT] = part[AMOUNT].to_numpy()
        return out

    def digest(self) -> str:
        """SHA-256 of the log: of its sorted ids, then of each block of :data:`DIGEST_CUSTOMERS`
        customers' rows in customer and day order (codes, day numbers and amounts to
        :data:`AMOUNT_DIGITS` decimals, :func:`block_digest`) — blocks that Spark hashes on
        its executors alike (:meth:`clv.data.spark_log.SparkCompact.digest`)."""
        import hashlib

        codes, days, amounts = sorted_arrays(self)
        digest = hashlib.sha256(ids_digest(self.ids).encode())
        starts = np.arange(0, len(self.ids) + DIGEST_CUSTOMERS, DIGEST_CUSTOMERS)
        for lo, hi in itertools.pairwise(np.searchsorted(codes, starts.astype(codes.dtype))):
            some = None if amounts is None else amounts[lo:hi]  # every block has customers
            digest.update(block_digest(codes[lo:hi], days[lo:hi], some).encode())
        return digest.hexdigest()

    def head(self, n: int) -> Compact:
        """The log of the first ``n`` customers by id."""
        codes = self.frame[CUSTOMER].to_numpy()
        rows = (
            self.frame.iloc[: position(codes, n)]  # ordered: the first rows
            if self.ordered
            else self.frame[codes < n]
        )
        return Compact(rows.reset_index(drop=True), self.ids, self.ordered)

    def codes_of(self, customers: pd.Series, missing: int | None = None) -> np.ndarray:
        """The codes of the customers with these text ids, looked up in Arrow (no Python
        strings): ids not in the log left out, or given the code ``missing`` when it is set."""
        import pyarrow as pa
        import pyarrow.compute as pc

        codes = pc.index_in(pa.array(customers), value_set=self.ids)
        if missing is None:
            return codes.drop_null().to_numpy().astype(np.int32)
        return codes.fill_null(missing).to_numpy()

    def of_customers(self, customers: pd.Series) -> Compact:
        """The log of the customers with these text ids (all their rows, in this log's order:
        an ordered log's part is ordered)."""
        wanted = np.zeros(len(self.ids), dtype=bool)
        wanted[self.codes_of(customers)] = True
        rows = self.frame[wanted[self.frame[CUSTOMER].to_numpy()]]
        return Compact(rows.reset_index(drop=True), self.ids, self.ordered)

    @staticmethod
    def month(day: str) -> str:
        """SQL of the first day of the month of the day number ``day`` (a DATE)."""
        return f"date_trunc('month', DATE '1970-01-01' + {day})::DATE"

    def run(
        self, sql: str, params: dict[str, Any] | None = None, gaps: bool = False
    ) -> pd.DataFrame:
        """Run SQL over the log as table ``tx`` (DuckDB; ``$name`` parameters), with a ``gap``
        column when ``gaps`` and the log is ordered (:func:`with_gaps`)."""
        from clv.tables import query

        return query(sql, params, tx=with_gaps(self.frame) if gaps and self.ordered else self.frame)

    def per_customer(
        self, sql: str, params: dict[str, Any] | None = None, gaps: bool = False
    ) -> pd.DataFrame:
        """Run SQL that gives one row per customer (a ``GROUP BY customer_id`` or ``SELECT
        DISTINCT customer_id`` over table ``tx``) and :meth:`finish` the result. With ``gaps``,
        ``tx`` of an ordered log has a ``gap`` column (:func:`with_gaps`), made a block at a
        time (held whole it is a fifth of the log).

        An ordered log of more than :data:`BLOCK_ROWS` rows is queried one block of whole
        customers at a time, on one connection: DuckDB then holds one block's aggregates,
        not every customer's (at 5.5M customers the churn features' query rose 2.4 GB above
        the log at once, 1.2 GB by blocks, and ran faster), and each block's rows come back
        sorted by code, so the blocks need no sort when put together.
        """
        return next(self.per_customer_blocks(sql, params, gaps))

    def per_customer_blocks(
        self,
        sql: str,
        params: dict[str, Any] | None = None,
        gaps: bool = False,
        customers: int | None = None,
    ) -> Iterator[pd.DataFrame]:
        """:meth:`per_customer` a part at a time: frames of at least ``customers`` rows (the
        last may have fewer) that together, in order, are its result; one frame, the whole
        result, when ``customers`` is None or the log is queried at once. A caller that keeps
        what it reads of each part, not the part, holds one part of the result at a time."""
        frame = self.frame
        gaps = gaps and self.ordered
        if not self.ordered or len(frame) <= BLOCK_ROWS:
            yield self.finish(self.run(sql, params, gaps))
            return
        from clv.tables import connection

        edges = customer_blocks(frame[CUSTOMER].to_numpy())
        parts: list[Any] = []
        rows = 0
        with connection() as con:
            for lo, hi in itertools.pairwise(edges):
                con.register("tx", with_gaps(frame.iloc[lo:hi]) if gaps else frame.iloc[lo:hi])
                parts.append(con.sql(sql, params=params).to_arrow_table().sort_by(CUSTOMER))
                con.unregister("tx")
                rows += parts[-1].num_rows
                if customers is not None and rows >= customers and hi < len(frame):
                    yield self._joined(parts)
                    parts, rows = [], 0
        yield self._joined(parts)

    def _joined(self, parts: list[Any]) -> pd.DataFrame:
        """Blocks of a per-customer result (Arrow tables, in code order) as one labelled frame."""
        import pyarrow as pa

        table = pa.concat_tables(parts)
        parts.clear()  # the caller's list: each block's memory goes with the conversion
        return self._labelled(table.to_pandas(self_destruct=True))

    def finish(self, table: pd.DataFrame) -> pd.DataFrame:
        """A per-customer result of a ``GROUP BY customer_id``: text ids, sorted by id, without
        ``monetary_value`` when the log has no amounts."""
        return self._labelled(table.sort_values(CUSTOMER, ignore_index=True))

    def _labelled(self, table: pd.DataFrame) -> pd.DataFrame:
        """A per-customer result sorted by code, with text ids."""
        table[CUSTOMER] = self.ids.take(table[CUSTOMER].to_numpy()).to_pandas().astype("str")
        if not self.has_amounts and "monetary_value" in table:
            table = table.drop(columns="monetary_value")
        return table


#: Rows per block of customers in :meth:`Compact.per_customer` (blocks end at a customer's
#: last row, so they may be a little longer).
BLOCK_ROWS = 4_000_000


def customer_blocks(codes: np.ndarray, rows: int | None = None) -> np.ndarray:
    """Edges of blocks of about ``rows`` (default :data:`BLOCK_ROWS`) rows of customer-sorted
    codes, each starting at the first row of a customer: ``edges[i]:edges[i + 1]`` is block i."""
    rows = BLOCK_ROWS if rows is None else rows
    # a searchsorted on the int32 codes themselves: an int64 key would copy the column
    firsts = codes[np.arange(0, len(codes), rows)]
    return np.append(np.unique(np.searchsorted(codes, firsts)), len(codes))


#: Customers per block of :meth:`Compact.digest`.
DIGEST_CUSTOMERS = 1_000_000
#: Decimals of the amounts :meth:`Compact.digest` hashes: a day's total of three or more
#: purchases can differ in its last bit with the order they were added in (floating-point
#: addition is not associative), which differs between engines and thread counts.
AMOUNT_DIGITS = 6


def ids_digest(ids: Any) -> str:
    """SHA-256 of a list of customer ids (an Arrow array of text), from each id's hash."""
    import hashlib

    digest = hashlib.sha256()
    for start in range(0, len(ids), DIGEST_CUSTOMERS):
        part = ids[start : start + DIGEST_CUSTOMERS].to_pandas().astype("str")
        digest.update(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes())
    return digest.hexdigest()


#: Rows hashed at a time inside :func:`block_digest`.
HASH_ROWS = 2_000_000


def block_digest(codes: np.ndarray, days: np.ndarray, amounts: np.ndarray | None) -> str:
    """SHA-256 of rows ordered by customer code and day: of each row's hash
    (``pandas.util.hash_pandas_object`` of codes and days as int64, amounts rounded to
    :data:`AMOUNT_DIGITS` decimals), fed :data:`HASH_ROWS` rows at a time — the same digest as
    of all at once, without the block's int64 copies and hashes at once (1.5 GB for a block
    of 1M customers of a 100M-row log)."""
    import hashlib

    digest = hashlib.sha256()
    for start in range(0, len(codes), HASH_ROWS):
        part = slice(start, start + HASH_ROWS)
        columns = {
            "code": np.asarray(codes[part], np.int64),
            "day": np.asarray(days[part], np.int64),
        }
        if amounts is not None:
            columns["amount"] = np.round(np.asarray(amounts[part], np.float64), AMOUNT_DIGITS)
        rows = pd.util.hash_pandas_object(pd.DataFrame(columns), index=False)
        digest.update(rows.to_numpy().tobytes())
    return digest.hexdigest()


def customer_codes(ids: pd.Series | Any) -> tuple[np.ndarray, Any, bool]:
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


def day_numbers(dates: pd.Series | np.ndarray, chunk: int = 10_000_000) -> np.ndarray:
    """Day numbers of midnight timestamps as int32 (the inverse of :func:`day_start`), converted
    in chunks (no int64 copy of a long log)."""
    values = np.asarray(dates, dtype="datetime64[ns]").view("int64")
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
    codes, ids, sorted_ids = customer_codes(transactions[CUSTOMER])
    return assemble(codes, ids, sorted_ids, day_numbers(transactions[DATE]), amounts)


def sum_same_days(
    batches: Iterable[Any], rows: int, has_amounts: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One row per customer code and day from Arrow batches of ``(code, day[, amount])`` rows
    sorted by code and day (``rows``: at most this many in all).

    Each day's amounts are added up in ascending order, so that a day's total is the same
    whatever order the rows of a day came in (threads, chunks) and wherever the batches end: a
    day of three or more rows is put in that order here (addition of two is exact in either
    order), and the last day of a batch waits for the next batch.

    Returns
    -------
    tuple
        Codes, day numbers (int32) and amounts (float64; None without).
    """
    codes = np.empty(rows, dtype=np.int32)
    days = np.empty(rows, dtype=np.int32)
    amounts = np.empty(rows) if has_amounts else None
    n = 0
    held: list[np.ndarray] = []  # the rows of the last day seen, which may go on
    for batch in batches:
        columns = [batch.column(i).to_numpy() for i in range(3 if has_amounts else 2)]
        if held:
            columns = [np.concatenate(pair) for pair in zip(held, columns, strict=True)]
        if len(columns[0]) == 0:
            continue
        c, d = columns[0], columns[1]
        new = np.empty(len(c), dtype=bool)
        new[0] = True
        np.not_equal(c[1:], c[:-1], out=new[1:])
        new[1:] |= d[1:] != d[:-1]
        starts = np.flatnonzero(new)
        last = int(starts[-1])
        held = [column[last:] for column in columns]
        n = _add_days([column[:last] for column in columns], starts[:-1], codes, days, amounts, n)
    if held:
        n = _add_days(held, np.zeros(1, dtype=np.intp), codes, days, amounts, n)
    return codes[:n], days[:n], None if amounts is None else amounts[:n]


def _add_days(
    columns: list[np.ndarray],
    starts: np.ndarray,
    codes: np.ndarray,
    days: np.ndarray,
    amounts: np.ndarray | None,
    n: int,
) -> int:
    """Write the days of whole-day rows (``starts``: each day's first row) from position ``n``
    on; returns the new end."""
    k = len(starts)
    if k == 0:
        return n
    codes[n : n + k] = columns[0][starts]
    days[n : n + k] = columns[1][starts]
    if amounts is not None:
        amounts[n : n + k] = np.add.reduceat(_ascending_within_days(columns[2], starts), starts)
    return n + k


def _ascending_within_days(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """``values`` with the rows of each day of three or more rows in ascending order."""
    sizes = np.diff(np.append(starts, len(values)))
    long = sizes >= 3
    if not long.any():
        return values
    rows = np.flatnonzero(np.repeat(long, sizes))
    day = np.repeat(np.flatnonzero(long), sizes[long])
    out = np.array(values, copy=True)
    out[rows] = values[rows][np.lexsort((values[rows], day))]
    return out


def assemble(
    codes: np.ndarray, ids: Any, sorted_ids: bool, days: np.ndarray, amounts: np.ndarray | None
) -> Compact:
    """The :class:`Compact` log of codes, day numbers and amounts (``gap`` when ordered)."""
    columns: dict[str, Any] = {CUSTOMER: codes, DAY: days}
    if amounts is not None:
        columns[AMOUNT] = amounts
    ordered = sorted_ids and not np.any((days[1:] < days[:-1]) & (codes[1:] == codes[:-1]))
    return Compact(pd.DataFrame(columns, copy=False), ids, ordered)


def with_gaps(part: pd.DataFrame) -> pd.DataFrame:
    """Rows of an ordered compact log that begin at a customer's first row, with ``gap``: the
    days since the customer's previous purchase (int32, −1 on her first)."""
    codes, days = part[CUSTOMER].to_numpy(), part[DAY].to_numpy()
    gap = np.empty(len(days), dtype=np.int32)  # written in place: no int64 copies
    gap[:1] = -1
    np.subtract(days[1:], days[:-1], out=gap[1:])
    np.copyto(gap[1:], -1, where=codes[1:] != codes[:-1])
    return part.assign(gap=gap)


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
