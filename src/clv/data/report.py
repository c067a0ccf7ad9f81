"""The cleaning report: every row read accounted for (used, excluded by a rule, merged)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from clv.config import DataConfig
from clv.data.compact import day_start
from clv.data.screen import RowCounts
from clv.errors import DataValidationError

#: The error for a log without rows.
EMPTY_LOG = "The transaction log is empty: there is nothing to train or score on."


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


def require_used(counts: RowCounts) -> None:
    """Stop when screening left no purchase, saying what took the rows."""
    if counts.used == 0:
        raise DataValidationError(
            f"No purchase is left after cleaning ({counts.rows_read:,} rows read, "
            f"{counts.after:,} after the as-of day, {counts.negative:,} negative, "
            f"{counts.implausible_dates + counts.implausible_amounts:,} implausible). "
            "Check --as-of and the amount policies."
        )


def cleaning_report(
    counts: RowCounts,
    config: DataConfig,
    rule: str,
    transactions: int,
    customers: int,
    first_day: int,
    last_day: int,
) -> CleaningReport:
    """The report of a cleaned log: the screening counts, rule 4's bounds, and the merged
    log's transactions, customers and first and last day numbers."""
    return CleaningReport(
        rows_read=counts.rows_read,
        rows_after_as_of=counts.after,
        negative_amount_rows=counts.negative,
        negative_amount_total=counts.negative_total,
        negative_amount_policy=config.negative_amounts,
        zero_amount_rows=counts.zero,
        zero_amount_policy=config.zero_amounts,
        rows_used=counts.used,
        same_day_merged=int(counts.used - transactions),
        transactions=transactions,
        customers=customers,
        first_date=str(day_start(first_day).astype("datetime64[D]")),
        last_date=str(day_start(last_day).astype("datetime64[D]")),
        timezone=config.timezone,
        has_amounts=config.amount_col is not None,
        implausible_policy=config.implausible,
        implausible_date_rows=counts.implausible_dates,
        implausible_amount_rows=counts.implausible_amounts,
        implausible_rule=rule,
        implausible_examples=counts.examples,
    )
