"""The model's side of the report: value segments by model CLV, and the revenue forecast
of the next months with its range."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from clv import resources, units
from clv.config import DEFAULT_INTERVAL
from clv.data.compact import AMOUNT, CUSTOMER, DAY, day_number
from clv.data.log import TransactionLog
from clv.intervals import Range, add_ranges, pattern_ranges, pattern_spend
from clv.models.groups import bundle_groups
from clv.models.patterns import rfm_patterns_index
from clv.segments import value_segments


def value_segments_table(
    log: TransactionLog,
    as_of: pd.Timestamp,
    months: int,
    tiers: dict[str, float],
    rest: str,
    predicted: pd.Series | None = None,
) -> pd.DataFrame:
    """Share of customers and of revenue per value tier: by predicted CLV when given, else by
    revenue over the period."""
    start = (pd.Timestamp(as_of).to_period("M") - (months - 1)).start_time
    view = log.compact
    frame = view.per_customer(
        f"""SELECT {CUSTOMER},
                   COALESCE(SUM({AMOUNT}) FILTER (WHERE {DAY} >= $start), 0)::DOUBLE AS revenue
            FROM tx WHERE {DAY} <= $end GROUP BY {CUSTOMER}""",
        {"start": day_number(start), "end": day_number(as_of)},
    )
    if predicted is None:
        ranking = frame["revenue"]
    elif predicted.index.equals(pd.Index(frame[CUSTOMER])):  # the same customers, in id order
        ranking = pd.Series(predicted.to_numpy(), index=frame.index)
    else:
        ranking = frame[CUSTOMER].map(predicted).fillna(0.0)
    frame["ranking"] = ranking
    frame["segment"] = value_segments(ranking.to_numpy(), tiers, rest)
    total_rev, total_rank = frame["revenue"].sum(), frame["ranking"].sum()
    out = frame.groupby("segment", sort=False).agg(
        customers=(CUSTOMER, "size"), revenue=("revenue", "sum"), ranking=("ranking", "sum")
    )
    out["share_of_customers"] = out["customers"] / len(frame)
    out["share_of_revenue"] = out["revenue"] / total_rev if total_rev else float("nan")
    if predicted is not None:
        out["share_of_predicted_clv"] = out["ranking"] / total_rank if total_rank else float("nan")
    out = out.drop(columns="ranking").reset_index()
    order = [*tiers, rest]
    return (
        out.set_index("segment")
        .reindex([s for s in order if s in set(out["segment"])])
        .reset_index()
    )


def _monthly_purchases(
    bundle: Any, patterns: np.ndarray, months: int
) -> Iterator[tuple[int, np.ndarray]]:
    """Each pattern's expected transactions in each of the next ``months`` months, from the
    distinct RFM rows in the bundle's time unit
    (:func:`~clv.models.patterns.rfm_patterns_index`)."""
    x, t_x, T = patterns.T
    step = units.conversion("month", bundle.time_unit)
    previous = np.zeros(len(patterns))
    for k in range(1, months + 1):
        current = bundle.purchase.expected_purchases(k * step, x, t_x, T)
        yield k, current - previous
        previous = current


def model_forecast(
    bundle: Any,
    frame: pd.DataFrame,
    as_of: pd.Timestamp,
    months: int,
    clv_months: int = 12,
    level: float = DEFAULT_INTERVAL,
) -> tuple[pd.DataFrame, pd.Series]:
    """The revenue forecast and each customer's model CLV, from one pass over the months.

    Forecast: expected revenue of the existing customers in each of the next ``months`` months —
    Σ over customers of (expected transactions in the month) × (Gamma-Gamma expected spend), from
    their RFM table as of ``as_of`` (:func:`clv.features.build_rfm`, in the bundle's time unit);
    new customers are not included. Model CLV: each customer's undiscounted value over the next
    ``clv_months`` months (margin 1) — what ``clv score`` gives at that horizon in months with no
    discount; the report ranks its value tiers by it.

    The band: ``cumulative_revenue`` to the end of each month with its ``level`` range
    (``cumulative_low`` / ``cumulative_high``: the customers' randomness and the purchase and
    spend models' parameter uncertainty, :func:`clv.intervals.pattern_ranges`). It is given for the
    running total, whose spread the models define exactly; a single month's spread would need
    the joint distribution of two horizons.
    """
    value = np.empty(len(frame))
    first = pd.Timestamp(as_of).to_period("M") + 1
    horizon = max(months, clv_months)
    # each month's expected transactions and revenue, summed per group (a months × customers
    # table of them held 0.5 GB at 5.5M customers)
    transactions, revenues = np.zeros(months), np.zeros(months)
    ranges: list[list[Range]] = [[] for _ in range(months)]
    total = np.zeros(len(frame))
    step = units.conversion("month", bundle.time_unit)
    # one plain model, or one per covariate group; ranges add over groups (clv.intervals).
    # Every month's sums are by pattern: the customers' spend terms are summed by pattern once
    for rows, group in bundle_groups(bundle, frame):
        every = len(rows) == len(frame)  # one group (no covariates): no copies of the columns
        pick = slice(None) if every else rows
        x, m = (frame[c].to_numpy(dtype=float)[pick] for c in ("frequency", "monetary_value"))
        patterns, inverse = rfm_patterns_index(frame if every else frame.iloc[rows])
        value[rows] = group.spend.expected_average_value(x, m)
        # by blocks of customers: one block's spend gradient at a time (0.13 GB at 5.5M)
        sums = pattern_spend(group.spend, x, m, inverse, len(patterns))

        def month_range(
            k: int, group: Any = group, patterns: Any = patterns, sums: Any = sums
        ) -> Range:
            return pattern_ranges(
                group.purchase, k * step, patterns, sums.counts, spend=sums, level=level
            )["clv"]

        # the months' ranges are independent: on the run's threads (NumPy and SciPy release
        # the GIL), beside the monthly sums. Each evaluates its month's expected purchases
        # again (0.04 s at 1.2M patterns), which the sums below also do: handing it the sums'
        # would hold every month's array at once (0.1 GB), as the tasks start before the sums
        with ThreadPoolExecutor(max_workers=max(1, min(resources.threads(), months))) as pool:
            spreads = pool.map(month_range, range(1, months + 1))
            running = np.zeros(len(patterns))
            for k, monthly in _monthly_purchases(group, patterns, horizon):
                running += monthly
                if k <= months:
                    transactions[k - 1] += monthly @ sums.counts
                    revenues[k - 1] += monthly @ sums.now
                if k == clv_months:
                    total[rows] = running[inverse]
            for k, spread in enumerate(spreads):
                ranges[k].append(spread)
    table, cumulative = [], 0.0
    for k in range(1, months + 1):
        revenue = float(revenues[k - 1])
        cumulative += revenue
        spread = add_ranges(ranges[k - 1])
        table.append(
            {
                "month": str(first + (k - 1)),
                "expected_transactions": float(transactions[k - 1]),
                "expected_revenue": revenue,
                "cumulative_revenue": cumulative,
                "cumulative_low": spread.low,
                "cumulative_high": spread.high,
            }
        )
    # the text ids as they are (Arrow strings): not 5.5M Python strings (0.3 GB)
    clv = pd.Series(value * total, index=pd.Index(frame[CUSTOMER]), name="clv")
    return pd.DataFrame(table), clv
