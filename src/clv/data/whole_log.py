"""The whole-log part of the implausible-values rule: the bulk of dates and the median amount
from counts gathered while screening, then the rows outside them, excluded or refused."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clv.config import DataConfig
from clv.data.bulk import BulkSummary
from clv.data.compact import AMOUNT, CUSTOMER, DATE, day_number, day_start
from clv.data.screen import EXAMPLES, RowCounts, refuse
from clv.tables import query


@dataclass(frozen=True)
class BulkSql:
    """Where :func:`screen_bulk`'s SQL runs: ``run(sql)`` over the screened rows as table
    ``tx`` (``customer_id``, ``date`` timestamps, ``amount``), and the SQL of a discrete
    quantile of the dates with ``{q}`` for the share (a timestamp, or a day number)."""

    run: Callable[[str], pd.DataFrame]
    # on day numbers (int32): at 100M rows these quantiles and the median's query after them
    # rose 1.8 GB above the process, 2.7 GB with the quantiles on the timestamps
    date_quantile: str = (
        f"quantile_disc(date_diff('day', TIMESTAMP '1970-01-01', {DATE})::INTEGER, {{q}})"
    )

    @classmethod
    def duckdb(cls, used: pd.DataFrame | Path) -> BulkSql:
        """DuckDB over a frame, or over the Parquet chunks in a folder."""
        tx = used if isinstance(used, pd.DataFrame) else used / "[0-9]*.parquet"
        return cls(lambda sql: query(sql, tx=tx))


def _day(value: Any) -> pd.Timestamp:
    """A quantile of the dates as a timestamp (engines give a timestamp or a day number)."""
    if isinstance(value, (int, float, np.integer, np.floating)):
        return pd.Timestamp(day_start(np.array([int(value)]))[0])
    return pd.Timestamp(value)


def _share(rows: int) -> int:
    """The tail share, in millionths, beyond which dates are outside the bulk of a log: 1 %, or
    5 rows of a log under 500 rows (at most a quarter)."""
    return max(10_000, min(250_000, 5_000_000 // max(rows, 1)))


def _amount_chunks(used: pd.DataFrame | Path) -> Callable[[], Iterator[np.ndarray]]:
    """A pass over the screened rows' amounts (a frame, or the Parquet chunks in a folder)."""

    def amounts() -> Iterator[np.ndarray]:
        if isinstance(used, pd.DataFrame):
            yield used[AMOUNT].to_numpy()
            return
        import pyarrow.parquet as pq

        for path in sorted(used.glob("[0-9]*.parquet")):
            yield pq.read_table(path, columns=[AMOUNT]).column(0).to_numpy()

    return amounts


def screen_bulk(
    used: pd.DataFrame | Path | BulkSql,
    counts: RowCounts,
    config: DataConfig,
    summary: BulkSummary | None = None,
) -> tuple[str, str, RowCounts]:
    """The part of rule 4 that needs the whole log: dates far outside its bulk, amounts far
    above its median. Returns the SQL condition of the rows to keep (``TRUE`` for all), the
    rule's description, and the counts with those rows moved from used to implausible.

    ``used`` is the screened rows (a frame or a folder of Parquet chunks, read by DuckDB) or
    a :class:`BulkSql` that runs the same SQL elsewhere (Spark). With the ``summary`` of the
    screened rows (a frame or a folder), the bulk and the median come from its counts
    (:mod:`clv.data.bulk`, the same values as the SQL), and a log with no implausible row is
    not read again."""
    sql = used if isinstance(used, BulkSql) else BulkSql.duckdb(used)
    counted = None if isinstance(used, BulkSql) else summary
    has_amounts = config.amount_col is not None
    wants_median = has_amounts and config.max_amount_ratio is not None
    share = _share(counts.used)
    median = None
    if counted is not None:
        q = Fraction(share, 1_000_000)
        bulk_lo, bulk_hi = _day(counted.day_quantile(q)), _day(counted.day_quantile(1 - q))
        if wants_median:
            median = counted.median(_amount_chunks(used))
    else:
        # the dates' quantiles and the amounts' median in two queries: each holds one column of
        # every row (at 100M rows, 5.3 s and 1.8 GB above the process in place of 7.2 s and
        # 3.6 GB)
        dates = sql.run(
            f"SELECT {sql.date_quantile.format(q=f'0.{share:06d}')} AS lo, "
            f"{sql.date_quantile.format(q=f'0.{1_000_000 - share:06d}')} AS hi FROM tx"
        ).iloc[0]
        bulk_lo, bulk_hi = _day(dates["lo"]), _day(dates["hi"])
        if wants_median:
            positive = sql.run(f"SELECT median({AMOUNT}) FILTER (WHERE {AMOUNT} > 0) AS m FROM tx")
            median = positive.iloc[0]["m"]
    conditions, rules = [], []
    outside_days = 0
    if config.date_window_years is not None:
        reach = pd.Timedelta(days=round(config.date_window_years * 365.25))
        lo, hi = bulk_lo - reach, bulk_hi + reach
        conditions.append(
            f"({DATE} < TIMESTAMP '{lo:%Y-%m-%d}' OR {DATE} > TIMESTAMP '{hi:%Y-%m-%d}')"
        )
        rules.append(
            f"dates outside {lo:%Y-%m-%d} .. {hi:%Y-%m-%d} ({config.date_window_years:g} years "
            f"around the bulk of the log, {bulk_lo:%Y-%m-%d} .. {bulk_hi:%Y-%m-%d})"
        )
        if counted is not None:
            outside_days = counted.days_outside(day_number(lo), day_number(hi))
    limit = None
    if has_amounts and config.max_amount_ratio is not None and pd.notna(median):
        limit = config.max_amount_ratio * float(median)
        conditions.append(f"({AMOUNT} > {limit!r})")
        rules.append(
            f"amounts above {limit:,.2f} ({config.max_amount_ratio:g} × the median positive "
            f"amount {float(median):,.2f})"
        )
    rule = "; ".join(rules)
    if not conditions:
        return "TRUE", rule, counts
    if counted is not None and not outside_days and (limit is None or counted.max_amount <= limit):
        return "TRUE", rule, counts  # the counts say no row breaks the rule
    date_rule = conditions[0] if config.date_window_years is not None else "FALSE"
    either = " OR ".join(conditions)
    found = sql.run(
        f"SELECT count(*) FILTER (WHERE {date_rule}) AS dates, "
        f"count(*) FILTER (WHERE ({either}) AND NOT {date_rule}) AS amounts FROM tx"
    ).iloc[0]
    dates, amounts = int(found["dates"]), int(found["amounts"])
    if not dates + amounts:
        return "TRUE", rule, counts
    amount = f", {AMOUNT}" if has_amounts else ""
    rows = sql.run(
        f"SELECT {CUSTOMER}, {DATE}{amount} FROM tx WHERE {either} "
        f"ORDER BY {DATE}, {CUSTOMER} LIMIT 3"
    )
    examples = tuple(
        f"customer {row[CUSTOMER]!r} on {pd.Timestamp(row[DATE]):%Y-%m-%d}"
        + (f", amount {row[AMOUNT]!r}" if has_amounts else "")
        for _, row in rows.iterrows()
    )
    if config.implausible == "error":
        refuse(
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
