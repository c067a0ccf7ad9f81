"""The whole-log statistics of the implausible-values rule, gathered while the rows are screened.

The rule (:func:`clv.data.whole_log.screen_bulk`) needs two discrete quantiles of the days and the
median of the positive amounts. A query over every row holds one column of the whole log to
find them (at 100M rows, 5–12 s and 1.8 GB). :class:`BulkSummary` instead counts, chunk by
chunk as the rows are screened, the rows of each day — the days' quantiles are read off these
counts exactly — and the positive amounts per 16-bit digit of their bits: read as unsigned
integers, the bits of positive doubles are ordered as their values are, so the median's digit is
known after screening, and an exact radix selection narrows it down in passes over the amounts
(one pass, unless more than ``collect_rows`` amounts share the median's leading digits), holding
at most ``collect_rows`` of them.

Both reproduce DuckDB's definitions (tests compare them): ``quantile_disc(x, q)`` is the value
of 0-based rank ``max(1, ceil(n q)) - 1`` of the sorted values (``q`` exact, as DuckDB takes a
decimal literal), and ``median`` is ``lo * 0.5 + hi * 0.5`` of the two middle values of an even
count (DuckDB 2's interpolation, which differs from ``(lo + hi) / 2`` only for subnormal amounts
and from ``lo + (hi - lo) * 0.5`` in the last bit), the middle value of an odd one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from math import ceil

import numpy as np

from clv.data.compact import day_numbers

#: Bits per digit of the radix selection (one histogram of 2**16 counts per pass).
DIGIT_BITS = 16
#: The amounts that share the median's leading digits are collected and partitioned once there
#: are at most this many (8 bytes each); above it, a pass counts their next digit.
COLLECT_ROWS = 8_000_000


def _positive_keys(amounts: np.ndarray) -> np.ndarray:
    """The bits of the positive amounts as unsigned integers (ordered as the amounts are)."""
    values = np.asarray(amounts, dtype=np.float64)
    return np.ascontiguousarray(values[values > 0]).view(np.uint64)


@dataclass
class BulkSummary:
    """Counts of the screened rows per day and of their positive amounts per leading digit.

    Build it with :meth:`add` for each chunk of screened rows; then :meth:`day_quantile`,
    :meth:`days_outside` and :meth:`median` answer the rule's questions.
    """

    first_day: int = 0
    day_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    digits: np.ndarray = field(default_factory=lambda: np.zeros(1 << DIGIT_BITS, dtype=np.int64))
    positive: int = 0
    max_amount: float = -np.inf

    def add(self, dates: np.ndarray, amounts: np.ndarray | None) -> None:
        """Count a chunk's rows: their dates (midnights) and amounts (None without amounts)."""
        days = day_numbers(dates)
        if len(days) == 0:
            return
        low, high = int(days.min()), int(days.max())
        counts = np.bincount(days - low, minlength=high - low + 1)
        if len(self.day_counts) == 0:
            self.first_day, self.day_counts = low, counts.astype(np.int64)
        else:
            start = min(self.first_day, low)
            stop = max(self.first_day + len(self.day_counts), high + 1)
            merged = np.zeros(stop - start, dtype=np.int64)
            here = self.first_day - start
            merged[here : here + len(self.day_counts)] += self.day_counts
            merged[low - start : low - start + len(counts)] += counts
            self.first_day, self.day_counts = start, merged
        if amounts is not None and len(amounts):
            keys = _positive_keys(amounts)
            shift = 64 - DIGIT_BITS
            self.digits += np.bincount(keys >> np.uint64(shift), minlength=1 << DIGIT_BITS)
            self.positive += len(keys)
            self.max_amount = max(self.max_amount, float(np.max(amounts)))

    @property
    def rows(self) -> int:
        """Rows counted."""
        return int(self.day_counts.sum())

    def day_quantile(self, q: Fraction) -> int:
        """DuckDB's ``quantile_disc`` of the day numbers at the exact share ``q``."""
        n = self.rows
        if n == 0:
            raise ValueError("no rows were counted")
        rank = max(1, ceil(q * n)) - 1
        return self.first_day + int(np.searchsorted(np.cumsum(self.day_counts), rank, "right"))

    def days_outside(self, low: int, high: int) -> int:
        """Rows dated before day ``low`` or after day ``high``."""
        days = self.first_day + np.arange(len(self.day_counts))
        return int(self.day_counts[(days < low) | (days > high)].sum())

    def median(
        self,
        passes: Callable[[], Iterable[np.ndarray]],
        collect_rows: int = COLLECT_ROWS,
    ) -> float | None:
        """DuckDB's ``median`` of the positive amounts (None if there are none).

        ``passes()`` yields the amounts counted by :meth:`add` again, in any pieces and order;
        it is called once per pass of the selection.
        """
        n = self.positive
        if n == 0:
            return None
        low, high = _select(self.digits, (n - 1) // 2, n // 2, passes, collect_rows)
        return low if n % 2 else low * 0.5 + high * 0.5


def _select(
    digits: np.ndarray,
    first: int,
    second: int,
    passes: Callable[[], Iterable[np.ndarray]],
    collect_rows: int,
) -> tuple[float, float]:
    """The positive amounts of 0-based ranks ``first`` and ``second`` (``first`` or
    ``first + 1``), from the counts of their leading digits and passes over them."""
    shift = 64 - DIGIT_BITS
    prefix, below, counts = 0, 0, digits
    while True:
        cumulative = np.cumsum(counts)
        d1 = int(np.searchsorted(cumulative, first - below, "right"))
        d2 = int(np.searchsorted(cumulative, second - below, "right"))
        if d1 != d2:  # neighbours in two digits: the last of one, the first of the other
            return _edges(prefix | d1 << shift, prefix | d2 << shift, 1 << shift, passes)
        below += int(cumulative[d1 - 1]) if d1 else 0
        prefix |= d1 << shift
        if shift == 0:  # every bit known: one value
            value = float(np.array([prefix], dtype=np.uint64).view(np.float64)[0])
            return value, value
        span = 1 << shift
        if counts[d1] <= collect_rows:
            keys = np.concatenate([_within(k, prefix, span) for k in _keys(passes)])
            chosen = np.partition(keys, (first - below, second - below))
            pair = chosen[[first - below, second - below]].view(np.float64)
            return float(pair[0]), float(pair[1])
        shift -= DIGIT_BITS
        counts = np.zeros(1 << DIGIT_BITS, dtype=np.int64)
        for keys in _keys(passes):
            inside = _within(keys, prefix, span)
            counts += np.bincount(
                (inside >> np.uint64(shift)) & np.uint64((1 << DIGIT_BITS) - 1),
                minlength=1 << DIGIT_BITS,
            )


def _keys(passes: Callable[[], Iterable[np.ndarray]]) -> Iterable[np.ndarray]:
    for amounts in passes():
        yield _positive_keys(amounts)


def _within(keys: np.ndarray, start: int, span: int) -> np.ndarray:
    """The keys in ``[start, start + span)``."""
    return keys[(keys >= np.uint64(start)) & (keys <= np.uint64(start + span - 1))]


def _edges(
    low_start: int, high_start: int, span: int, passes: Callable[[], Iterable[np.ndarray]]
) -> tuple[float, float]:
    """The largest key in ``[low_start, low_start + span)`` and the smallest in
    ``[high_start, high_start + span)``, as amounts."""
    largest, smallest = 0, (1 << 64) - 1
    for keys in _keys(passes):
        low, high = _within(keys, low_start, span), _within(keys, high_start, span)
        if len(low):
            largest = max(largest, int(low.max()))
        if len(high):
            smallest = min(smallest, int(high.min()))
    pair = np.array([largest, smallest], dtype=np.uint64).view(np.float64)
    return float(pair[0]), float(pair[1])
