"""The KPI tables: the monthly table (active, new, lost, revenue, rates), the period's
summary, acquisition costs, NPS and SERVQUAL, and the words for a KPI without a value."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from clv.config import SERVQUAL_DIMENSIONS
from clv.data.compact import (
    AMOUNT,
    CUSTOMER,
    DAY,
    customer_blocks,
    day_number,
    position,
    sorted_arrays,
)
from clv.data.customers import SERVQUAL_COLUMN
from clv.data.log import TransactionLog
from clv.errors import DataValidationError
from clv.kpis.lapses import lapse_days
from clv.nps import band_shares, nps


def simple_clv(
    annual_revenue: float, lifetime_years: float, acquisition_cost: float = 0.0
) -> float:
    """Annual revenue per customer × expected lifetime in years − acquisition cost.

    >>> simple_clv(1_000, 10, 1_000)
    9000.0
    """
    return float(annual_revenue * lifetime_years - acquisition_cost)


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
