"""A cleaned transaction log: its compact rows and the report of how it was made."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from clv.data.compact import Compact, compact
from clv.data.report import CleaningReport


@dataclass(frozen=True)
class TransactionLog:
    """A cleaned log: one row per customer and purchase day, with the report of how it was made.

    The log is kept as its compact view (:class:`Compact`: int32 customer codes and day numbers,
    16 bytes a row with amounts, where text ids and timestamps take about 30 and more
    in pandas); :attr:`frame` rebuilds the readable table on each access. Build one from a
    table with :meth:`from_frame`. A log cleaned on Spark holds a
    :class:`clv.data.spark_log.SparkCompact` (the rows stay on the cluster) and behaves alike.
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
        """Return row count, customers, date range and a SHA-256 of the cleaned log
        (:meth:`Compact.digest`: the same for the same data on either engine)."""
        return {
            "transactions": self.report.transactions,
            "customers": self.report.customers,
            "first_date": self.report.first_date,
            "last_date": self.report.last_date,
            "sha256": self.compact.digest(),
        }

    def first_customers(self, n: int) -> TransactionLog:
        """The log of the first ``n`` customers by id (on the driver), e.g. for an input
        example; the report is the full log's."""
        return TransactionLog(self.compact.head(n), self.report)
