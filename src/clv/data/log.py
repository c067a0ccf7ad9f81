"""A cleaned transaction log: its compact rows and the report of how it was made."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from clv.data.compact import AMOUNT, CUSTOMER, Compact, compact
from clv.data.screen import CleaningReport

#: Rows hashed at a time by :meth:`TransactionLog.fingerprint`.
FINGERPRINT_CHUNK_ROWS = 5_000_000
#: Decimals of the amounts :meth:`TransactionLog.fingerprint` hashes.
AMOUNT_DIGITS = 6


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
        """Return row count, customers, date range and a SHA-256 of the cleaned log.

        Amounts are hashed to the millionth of a currency unit: a day's total of three or more
        purchases can differ in its last bit with the order they were added in (floating-point
        addition is not associative), which differs between engines (DuckDB, Spark) and
        thread counts; the same data keep the same digest.
        """
        digest = hashlib.sha256()
        rows = len(self.compact.frame)
        for start in range(0, rows, FINGERPRINT_CHUNK_ROWS):  # bounded memory
            part = self.compact.to_frame(slice(start, start + FINGERPRINT_CHUNK_ROWS))
            if AMOUNT in part:
                part[AMOUNT] = part[AMOUNT].round(AMOUNT_DIGITS)
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
