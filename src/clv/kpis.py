"""Business metrics in the stakeholders' language (DOMAIN.md §4), from the same cleaned log.

Definitions (each is stated in the report too):

- **lost**: a customer is lost on the day their inactivity reaches ``inactivity_days`` (365 by
  default): a purchase + ``inactivity_days`` with no purchase in between. A later purchase
  *reactivates* them. **Active** on a day: acquired by then and not in a lapse.
- per calendar month: active at the start and at the end, **new** (first purchase in the month),
  **lost** (lost day in the month), **reactivated**, **churn rate** = lost ÷ mean(active at
  start, at end), **retention rate** = (active at end − new) ÷ active at start (reactivated
  customers count as retained), **repeat-purchase rate** = share
  of the month's buyers whose purchase was not their first, revenue and revenue per active
  customer.
- the **period** (last ``period_months`` months, 12 by default): churn rate = customers lost in
  the period ÷ average number of active customers over its months; retention = (active at the
  end − new in the period) ÷ active at the start; acquisition rate = new customers per month;
  repeat-purchase rate = share of the period's buyers who bought on two or more days in it;
  revenue per customer = revenue ÷ average active customers (annualized).
- **simple CLV** = annual revenue per customer × expected lifetime in years − acquisition cost
  (1,000 × 10 − 1,000 = 9,000); expected lifetime = 1 ÷ annual churn rate unless given.
  **CLV : CAC** = (annual revenue × lifetime) ÷ CAC; **ROI** per customer = simple CLV ÷ CAC.
- **NPS** from 0–10 answers: promoters 9–10, passives 7–8, detractors 0–6; NPS = % promoters −
  % detractors, per month and over the period.
- **SERVQUAL**: gap = mean perception − mean expectation per dimension; weighted gap = Σ weight ×
  gap ÷ 100 (weights out of 100; default tangibles 11, reliability 32, responsiveness 22,
  assurance 19, empathy 16). Below 0: the service falls short of expectations.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from clv import resources, units
from clv.config import DEFAULT_INTERVAL, SERVQUAL_DIMENSIONS
from clv.data.compact import (
    AMOUNT,
    CUSTOMER,
    DAY,
    customer_blocks,
    day_number,
    day_start,
    position,
    sorted_arrays,
)
from clv.data.customers import SERVQUAL_COLUMN
from clv.data.log import TransactionLog
from clv.errors import DataValidationError
from clv.features import build_rfm
from clv.intervals import Range, add_ranges, pattern_ranges, pattern_spend
from clv.models.groups import bundle_groups
from clv.models.patterns import rfm_patterns_index
from clv.nps import band_shares, nps
from clv.segments import value_segments


def simple_clv(
    annual_revenue: float, lifetime_years: float, acquisition_cost: float = 0.0
) -> float:
    """Annual revenue per customer × expected lifetime in years − acquisition cost.

    >>> simple_clv(1_000, 10, 1_000)
    9000.0
    """
    return float(annual_revenue * lifetime_years - acquisition_cost)


#: The events of :func:`lapse_events`.
EVENTS = ("acquired", "lost", "reactivated")


def lapse_events(log: TransactionLog, as_of: pd.Timestamp, inactivity_days: int) -> pd.DataFrame:
    """Acquisition, loss and reactivation events up to ``as_of``, one row each.

    A customer is lost ``inactivity_days`` after a purchase not followed by another within that
    window (on or before ``as_of``), and *reactivated* by the purchase that ends such a lapse.
    Active on day t = acquired − lost + reactivated, counting events on or before t. Computed
    with array differences on the customer-sorted compact log, a block of whole customers at a
    time (no copy of the log in pandas); for a log held by Spark, as per-day counts with window
    functions on the cluster (:func:`lapse_counts`, the same events).
    """
    days = lapse_days(log, as_of, inactivity_days)
    return pd.concat(
        [pd.DataFrame({"event": k, "date": day_start(v)}) for k, v in days.items()],
        ignore_index=True,
    )


def lapse_days(
    log: TransactionLog, as_of: pd.Timestamp, inactivity_days: int
) -> dict[str, np.ndarray]:
    """The day numbers of :func:`lapse_events`, per event (``acquired``, ``lost``,
    ``reactivated``), each sorted."""
    end = day_number(as_of)
    if not isinstance(log.compact.frame, pd.DataFrame):
        counts = lapse_counts(log, as_of, inactivity_days)  # ordered by event and day
        kinds, day, n = (counts[c].to_numpy() for c in ("event", DAY, "n"))
        return {kind: np.repeat(day[kinds == kind], n[kinds == kind]) for kind in EVENTS}
    codes, days, _ = sorted_arrays(log.compact)
    found: dict[str, list[np.ndarray]] = {kind: [] for kind in EVENTS}
    for lo, hi in itertools.pairwise(customer_blocks(codes)):
        c, d = codes[lo:hi], days[lo:hi]
        keep = d <= end
        c, d = c[keep], d[keep]
        if not len(d):
            continue
        same = c[1:] == c[:-1]
        step = np.diff(d)
        lapse = np.r_[~same | (step > inactivity_days), True]
        lost = d[lapse] + inactivity_days
        found["acquired"].append(d[np.r_[True, ~same]])
        found["lost"].append(lost[lost <= end])
        found["reactivated"].append(d[1:][same & (step > inactivity_days)])
    return {
        kind: np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
        for kind, parts in found.items()
    }


def lapse_counts(log: TransactionLog, as_of: pd.Timestamp, inactivity_days: int) -> pd.DataFrame:
    """The events of :func:`lapse_events` counted per day (``event``, ``day``, ``n``), in SQL
    that DuckDB and Spark both run, ordered by event and day."""
    return log.compact.run(
        f"""
        WITH g AS (
            SELECT {DAY}, {DAY} - (LAG({DAY}) OVER w) AS back, (LEAD({DAY}) OVER w) - {DAY} AS ahead
            FROM tx WHERE {DAY} <= $end
            WINDOW w AS (PARTITION BY {CUSTOMER} ORDER BY {DAY})
        )
        SELECT * FROM (
            SELECT 'acquired' AS event, {DAY}, COUNT(*) AS n FROM g WHERE back IS NULL
            GROUP BY {DAY}
            UNION ALL
            SELECT 'lost' AS event, {DAY} + $gap AS {DAY}, COUNT(*) AS n FROM g
            WHERE (ahead IS NULL OR ahead > $gap) AND {DAY} + $gap <= $end GROUP BY {DAY}
            UNION ALL
            SELECT 'reactivated' AS event, {DAY}, COUNT(*) AS n FROM g WHERE back > $gap
            GROUP BY {DAY}
        ) ORDER BY event, {DAY}""",
        {"end": day_number(as_of), "gap": int(inactivity_days)},
    )


def _month_sql(has_amounts: bool, month: str) -> str:
    """Per calendar month (``month``: the SQL of a day's month start, :meth:`Compact.month`):
    buyers, the share of them buying again (not their first purchase, or twice that month) and
    revenue."""
    revenue = f"SUM({AMOUNT})" if has_amounts else "NULL::DOUBLE"
    return f"""
        WITH f AS (SELECT {CUSTOMER}, MIN({DAY}) AS first_day FROM tx GROUP BY {CUSTOMER}),
        m AS (
            SELECT {CUSTOMER}, {month} AS month, MIN({DAY}) AS day0, COUNT(*) AS n,
                   {revenue} AS revenue
            FROM tx WHERE {DAY} <= $end GROUP BY {CUSTOMER}, {month}
        )
        SELECT month, COUNT(*) AS buyers,
               AVG(CASE WHEN m.day0 > f.first_day OR m.n > 1 THEN 1 ELSE 0 END)::DOUBLE
                   AS repeat_rate,
               SUM(revenue)::DOUBLE AS revenue
        FROM m JOIN f USING ({CUSTOMER}) GROUP BY month
    """


def month_buyers(log: TransactionLog, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per calendar month with purchases up to ``as_of``: ``month`` (its first day), ``buyers``,
    ``repeat_rate`` (the share of them buying again: not their first purchase, or twice that
    month) and ``revenue``.

    On the customer-sorted compact log, one pass over blocks of whole customers: a customer's
    purchases in a month are one run of rows, so the counts need no group-by and no hash table
    of every (customer, month) pair (DuckDB held up to its 2 GB limit for that at 100M rows). A
    log held by Spark runs the same aggregation in SQL (:func:`_month_sql`).
    """
    view = log.compact
    end = day_number(as_of)
    if not isinstance(view.frame, pd.DataFrame):
        months = view.run(_month_sql(view.has_amounts, view.month(DAY)), {"end": end})
        months["month"] = pd.to_datetime(months["month"])
        return months
    codes, days, amounts = sorted_arrays(view)
    first_day, last_day = (int(days.min()), int(days.max())) if len(days) else (end, end)
    calendar = np.arange(first_day, last_day + 1)
    month_of_day = calendar.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    month0 = int(month_of_day[0])
    month_of_day -= month0
    width = int(month_of_day[-1]) + 1
    buyers, repeats, revenue = np.zeros(width), np.zeros(width), np.zeros(width)
    for lo, hi in itertools.pairwise(customer_blocks(codes)):
        c, d = codes[lo:hi], days[lo:hi]
        new_customer = np.r_[True, c[1:] != c[:-1]]
        # each row's customer's first purchase day (over the whole log, as of any date)
        first = d[new_customer][np.cumsum(new_customer) - 1]
        keep = d <= end
        c, d, first = c[keep], d[keep], first[keep]
        if not len(c):  # every purchase of these customers is after as_of
            continue
        month = month_of_day[d - first_day]
        run = np.flatnonzero(np.r_[True, (c[1:] != c[:-1]) | (month[1:] != month[:-1])])
        rows = np.diff(np.append(run, len(c)))
        of_run = month[run]
        buyers += np.bincount(of_run, minlength=width)
        again = (d[run] > first[run]) | (rows > 1)
        repeats += np.bincount(of_run, weights=again, minlength=width)
        if amounts is not None:
            spent = np.add.reduceat(amounts[lo:hi][keep], run)
            revenue += np.bincount(of_run, weights=spent, minlength=width)
    months = np.flatnonzero(buyers)
    return pd.DataFrame(
        {
            "month": (months + month0).astype("datetime64[M]").astype("datetime64[ns]"),
            "buyers": buyers[months].astype(np.int64),
            "repeat_rate": repeats[months] / buyers[months],
            "revenue": revenue[months] if amounts is not None else np.nan,
        }
    )


def monthly_table(
    log: TransactionLog, as_of: pd.Timestamp, inactivity_days: int = 365
) -> pd.DataFrame:
    """Per calendar month to ``as_of``: actives, new, lost, rates and revenue (module docstring)."""
    as_of = pd.Timestamp(as_of).normalize()
    days = lapse_days(log, as_of, inactivity_days)

    def active(day: pd.Timestamp, inclusive: bool) -> int:
        side, t = "right" if inclusive else "left", day_number(day)
        return (
            position(days["acquired"], t, side)
            - position(days["lost"], t, side)
            + position(days["reactivated"], t, side)
        )

    def within(kind: str, start: pd.Timestamp, end: pd.Timestamp) -> int:
        d = days[kind]
        return position(d, day_number(end), "right") - position(d, day_number(start), "left")

    periods = pd.period_range(pd.Timestamp(log.report.first_date), as_of, freq="M")
    months = month_buyers(log, as_of)
    months["month"] = months["month"].dt.strftime("%Y-%m")
    months = months.set_index("month").reindex([str(p) for p in periods])  # months without buyers
    months["buyers"] = months["buyers"].fillna(0).astype(int)
    if log.compact.has_amounts:
        months["revenue"] = months["revenue"].fillna(0.0)
    rows = []
    for month in periods:
        start = month.start_time.normalize()
        end = min(month.end_time.normalize(), as_of)
        active_start, active_end = active(start, inclusive=False), active(end, inclusive=True)
        new, lost = within("acquired", start, end), within("lost", start, end)
        key = str(month)
        buyers = int(months.at[key, "buyers"])
        revenue = float(months.at[key, "revenue"])
        average = (active_start + active_end) / 2
        rows.append(
            {
                "month": key,
                "active_start": active_start,
                "new": new,
                "reactivated": within("reactivated", start, end),
                "lost": lost,
                "active_end": active_end,
                "churn_rate": lost / average if average else float("nan"),
                "retention_rate": (active_end - new) / active_start
                if active_start
                else float("nan"),
                "buyers": buyers,
                "repeat_purchase_rate": float(months.at[key, "repeat_rate"])
                if buyers
                else float("nan"),
                "revenue": revenue,
                "revenue_per_active": revenue / average if average else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def period_summary(
    log: TransactionLog, monthly: pd.DataFrame, as_of: pd.Timestamp, months: int = 12
) -> dict[str, float]:
    """Rates over the last ``months`` months of ``monthly`` (module docstring)."""
    part = monthly.tail(months)
    n = len(part)
    average = float(((part["active_start"] + part["active_end"]) / 2).mean())
    start = pd.Period(part["month"].iloc[0], "M").start_time
    view = log.compact
    buyers = view.run(
        f"""SELECT COUNT(*) AS buyers, COUNT(*) FILTER (WHERE n >= 2) AS repeat_buyers
            FROM (SELECT COUNT(*) AS n FROM tx WHERE {DAY} BETWEEN $start AND $end
                  GROUP BY {CUSTOMER}) AS c""",
        {"start": day_number(start), "end": day_number(as_of)},
    ).iloc[0]
    revenue = float(part["revenue"].sum())
    return {
        "months": n,
        "from": str(part["month"].iloc[0]),
        "to": str(part["month"].iloc[-1]),
        "customers_lost": int(part["lost"].sum()),
        "average_active_customers": average,
        "churn_rate": float(part["lost"].sum() / average) if average else float("nan"),
        "retention_rate": float(
            (part["active_end"].iloc[-1] - part["new"].sum()) / part["active_start"].iloc[0]
        )
        if part["active_start"].iloc[0]
        else float("nan"),
        "new_customers": int(part["new"].sum()),
        "acquisition_rate_per_month": float(part["new"].sum() / n),
        "repeat_purchase_rate": float(buyers["repeat_buyers"] / buyers["buyers"])
        if buyers["buyers"]
        else float("nan"),
        "revenue": revenue,
        "revenue_per_customer": revenue / average if average else float("nan"),
        "annual_revenue_per_customer": revenue / average * 12 / n if average else float("nan"),
    }


def acquisition_costs(
    costs: pd.DataFrame, customers: pd.DataFrame | None, acquired: pd.Index
) -> tuple[float, pd.DataFrame | None]:
    """Average acquisition cost (CAC), and a per-channel table when costs are per channel.

    ``costs`` has ``acquisition_cost`` and either ``customer_id`` (CAC = mean over the listed
    customers who were acquired) or ``channel`` (needs ``customers`` with ``customer_id`` and
    ``channel``; CAC = mean over acquired customers of their channel's cost).
    """
    if "acquisition_cost" not in costs:
        raise DataValidationError(
            f"Cost table: missing column 'acquisition_cost'; it has {list(costs.columns)}."
        )
    bad = pd.to_numeric(costs["acquisition_cost"], errors="coerce")
    invalid = (bad.isna() | (bad < 0)).to_numpy()
    if invalid.any():
        row = int(np.flatnonzero(invalid)[0])
        raise DataValidationError(
            f"Cost table: {int(invalid.sum())} row(s) with a missing, non-numeric or negative "
            f"acquisition_cost, e.g. row {row + 1} ({costs['acquisition_cost'].iloc[row]!r})."
        )
    costs = costs.assign(acquisition_cost=bad)
    if CUSTOMER in costs:
        known = costs.assign(**{CUSTOMER: costs[CUSTOMER].astype("str")})
        known = known[known[CUSTOMER].isin(acquired)]
        if known.empty:
            raise DataValidationError("Cost table: none of its customer ids is in the log.")
        return float(known["acquisition_cost"].mean()), None
    if "channel" not in costs:
        raise DataValidationError("Cost table: needs a 'customer_id' or a 'channel' column.")
    if customers is None or "channel" not in customers:
        raise DataValidationError(
            "Per-channel costs need a customer table with a 'channel' column (--customers)."
        )
    table = customers[customers[CUSTOMER].isin(acquired)].astype({"channel": "str"})
    channel_costs = costs.astype({"channel": "str"}).set_index("channel")["acquisition_cost"]
    missing = sorted(set(table["channel"]) - set(channel_costs.index))
    if missing:
        raise DataValidationError(f"Cost table: no acquisition_cost for channel(s) {missing}.")
    per = table.groupby("channel").size().rename("customers").to_frame()
    per["acquisition_cost"] = channel_costs.reindex(per.index)
    cac = float((per["customers"] * per["acquisition_cost"]).sum() / per["customers"].sum())
    return cac, per.reset_index()


#: Why a KPI of the summary has no value (it is NaN in memory, ``null`` in ``kpis.json``): the
#: sentence the console and the HTML report show in its place.
NO_VALUE = {
    "churn_rate": "no active customers in the period",
    "retention_rate": "no active customers at the period's start",
    "repeat_purchase_rate": "no buyers in the period",
    "annual_revenue_per_customer": "no active customers in the period",
    "expected_lifetime_years": "no customer was lost in the period, so 1 / churn rate has none",
    "simple_clv": "the expected lifetime has no value",
    "clv_to_cac": "the acquisition cost is 0",
    "roi_per_customer": "the acquisition cost is 0",
}


def figure(value: float | None, spec: str, key: str) -> str:
    """A summary KPI as a person reads it: ``format(value, spec)``, or, when it has no value,
    ``none (<why>)`` from :data:`NO_VALUE` — never ``nan``.

    Examples
    --------
    >>> figure(0.25, ".1%", "churn_rate")
    '25.0%'
    >>> figure(float("nan"), ".2f", "clv_to_cac")
    'none (the acquisition cost is 0)'
    """
    if value is None or not math.isfinite(value):
        return f"none ({NO_VALUE[key]})"
    return format(value, spec)


def nps_table(
    surveys: pd.DataFrame, as_of: pd.Timestamp, months: int = 12
) -> tuple[pd.DataFrame, dict[str, float]]:
    """NPS per month of survey and over the last ``months`` months to ``as_of``.

    The overall entry names its period (``period``: first and last day) and the survey's own
    answers' date range (``survey_dates``, or None with no answers at all); with no answer in
    the period, its NPS and shares are None (``null`` in ``kpis.json``), not NaN."""
    answered = surveys[surveys["nps"].notna() & (surveys["date"] <= as_of)]
    by_month = answered.groupby(answered["date"].dt.to_period("M"))["nps"]
    columns = ["month", "responses", "promoters_pct", "passives_pct", "detractors_pct", "nps"]
    table = pd.DataFrame(
        [
            {"month": str(month), "responses": len(s), **band_shares(s), "nps": nps(s)}
            for month, s in by_month
        ],
        columns=columns,
    )
    start = (pd.Timestamp(as_of).to_period("M") - (months - 1)).start_time
    recent = answered[answered["date"] >= start]["nps"]
    dated = surveys.loc[surveys["nps"].notna(), "date"]
    overall: dict[str, Any] = {
        "responses": len(recent),
        **band_shares(recent),
        "nps": nps(recent),
        "period": [str(start.date()), str(pd.Timestamp(as_of).date())],
        "survey_dates": [str(dated.min().date()), str(dated.max().date())] if len(dated) else None,
    }
    if not len(recent):
        overall |= dict.fromkeys(("promoters_pct", "passives_pct", "detractors_pct", "nps"))
    return table, overall


def servqual(surveys: pd.DataFrame, weights: dict[str, float]) -> tuple[pd.DataFrame, float]:
    """Gap (perception − expectation) per dimension and the weighted gap (module docstring)."""
    rows = []
    for dim in SERVQUAL_DIMENSIONS:
        exp_cols = [
            c
            for c in surveys
            if (m := SERVQUAL_COLUMN.match(c)) and m[1] == "expectation" and m[2] == dim
        ]
        per_cols = [
            c
            for c in surveys
            if (m := SERVQUAL_COLUMN.match(c)) and m[1] == "perception" and m[2] == dim
        ]
        if not exp_cols or not per_cols:
            raise DataValidationError(
                f"SERVQUAL: dimension {dim!r} needs expectation_{dim}* and perception_{dim}* "
                "columns."
            )
        expectation = surveys[exp_cols].apply(pd.to_numeric, errors="coerce").mean(axis=1).mean()
        perception = surveys[per_cols].apply(pd.to_numeric, errors="coerce").mean(axis=1).mean()
        rows.append(
            {
                "dimension": dim,
                "weight": weights.get(dim, 0.0),
                "expectation": expectation,
                "perception": perception,
                "gap": perception - expectation,
            }
        )
    table = pd.DataFrame(rows)
    return table, float((table["weight"] * table["gap"]).sum() / 100.0)


@dataclass
class KpiReport:
    """Every number of the report, as tables and a JSON-ready summary."""

    summary: dict[str, Any]
    monthly: pd.DataFrame
    segments: pd.DataFrame
    forecast: pd.DataFrame | None = None
    nps_monthly: pd.DataFrame | None = None
    servqual: pd.DataFrame | None = None
    channels: pd.DataFrame | None = None
    definitions: dict[str, str] = field(default_factory=dict)


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


def build_report(
    log: TransactionLog,
    config: Any,
    as_of: pd.Timestamp | None = None,
    bundle: Any | None = None,
    surveys: pd.DataFrame | None = None,
    costs: pd.DataFrame | None = None,
    customers: pd.DataFrame | None = None,
    attributes: pd.DataFrame | None = None,
    rfm: pd.DataFrame | None = None,
) -> KpiReport:
    """Compute every KPI of the module docstring.

    Parameters
    ----------
    log : TransactionLog
        The cleaned log (needs amounts for revenue, CLV and the forecast).
    config : Config
        ``kpis`` settings and ``score.segments``.
    as_of : pandas.Timestamp, optional
        End of the reporting period (default: the log's last day).
    bundle : Bundle, optional
        A model bundle: segments by its 12-month CLV and the revenue forecast.
    surveys, costs, customers : pandas.DataFrame, optional
        Survey table (:func:`read_surveys`), acquisition costs, customer table with channels.
    attributes : pandas.DataFrame, optional
        Customer attributes, for a model with covariates (:mod:`clv.models.covariates`).
    rfm : pandas.DataFrame, optional
        The log's RFM table as of ``as_of`` in the bundle's time unit
        (:func:`clv.features.build_rfm`), when the caller has it (built here otherwise).

    Returns
    -------
    KpiReport
    """
    if not log.has_amounts:
        raise DataValidationError("The KPI report needs amounts (revenue); the log has none.")
    settings = config.kpis
    as_of = pd.Timestamp(as_of or log.report.last_date).normalize()
    monthly = monthly_table(log, as_of, settings.inactivity_days)
    period = period_summary(log, monthly, as_of, settings.period_months)
    lifetime_given = settings.expected_lifetime_years is not None
    annual_churn = period["churn_rate"] * 12 / period["months"]
    lifetime = (
        settings.expected_lifetime_years
        if lifetime_given
        else (1.0 / annual_churn if annual_churn > 0 else float("nan"))
    )
    annual = period["annual_revenue_per_customer"]
    clv_block: dict[str, Any] = {
        "annual_revenue_per_customer": annual,
        "expected_lifetime_years": lifetime,
        "lifetime_source": "given" if lifetime_given else "1 / annual churn rate",
        "gross_value": annual * lifetime,
    }
    channels = None
    if costs is not None:
        view = log.compact
        acquired = pd.Index(
            view.per_customer(
                f"SELECT DISTINCT {CUSTOMER} FROM tx WHERE {DAY} <= $end",
                {"end": day_number(as_of)},
            )[CUSTOMER]
        )
        cac, channels = acquisition_costs(costs, customers, acquired)
        clv_block |= {
            "acquisition_cost": cac,
            "simple_clv": simple_clv(annual, lifetime, cac),
            "clv_to_cac": annual * lifetime / cac if cac else float("nan"),
            "roi_per_customer": simple_clv(annual, lifetime, cac) / cac if cac else float("nan"),
        }
        if channels is not None:
            channels["simple_clv"] = annual * lifetime - channels["acquisition_cost"]
            cost = channels["acquisition_cost"].where(channels["acquisition_cost"] > 0)
            channels["clv_to_cac"] = annual * lifetime / cost  # NaN (empty in CSV) at cost 0
            channels["roi_per_customer"] = channels["simple_clv"] / cost
    else:
        clv_block["simple_clv"] = simple_clv(annual, lifetime, 0.0)
        clv_block["note"] = "no cost table: simple CLV without acquisition cost"
    predicted = None
    forecast = None
    if bundle is not None and bundle.spend is not None:
        if rfm is None:
            rfm = build_rfm(log.compact, as_of, bundle.time_unit)
        if attributes is not None:  # a model with covariates reads them
            rfm = rfm.merge(attributes, on=CUSTOMER, how="left", validate="one_to_one")
        forecast, predicted = model_forecast(
            bundle,
            rfm,
            as_of,
            settings.forecast_months,
            level=config.score.interval or DEFAULT_INTERVAL,
        )
    segments = value_segments_table(
        log,
        as_of,
        settings.period_months,
        config.score.segments,
        config.score.segment_rest,
        predicted,
    )
    summary: dict[str, Any] = {
        "as_of": str(as_of.date()),
        "lost_definition": f"no purchase for {settings.inactivity_days} days",
        "period": period,
        "simple_clv": clv_block,
        "segments_by": "model CLV over 12 months"
        if predicted is not None
        else "revenue in the period",
    }
    nps_monthly = servqual_table = None
    if surveys is not None:
        if "nps" in surveys:
            nps_monthly, summary["nps"] = nps_table(surveys, as_of, settings.period_months)
        if any(SERVQUAL_COLUMN.match(c) for c in surveys.columns):
            servqual_table, weighted = servqual(
                surveys[surveys["date"] <= as_of], settings.servqual_weights
            )
            summary["servqual"] = {"weighted_gap": weighted, "weights": settings.servqual_weights}
    if forecast is not None:
        summary["forecast"] = {
            "months": settings.forecast_months,
            "expected_revenue": float(forecast["expected_revenue"].sum()),
            "low": float(forecast["cumulative_low"].iloc[-1]),
            "high": float(forecast["cumulative_high"].iloc[-1]),
            "level": config.score.interval or DEFAULT_INTERVAL,
            "scope": "existing customers only (no new acquisitions)",
        }
    return KpiReport(summary, monthly, segments, forecast, nps_monthly, servqual_table, channels)
