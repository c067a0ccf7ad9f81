"""The KPI tables, computed on the compact log, equal a plain reference on random logs.

The reference functions below count from the definitions, customer by customer and day by day
(actives, losses, reactivations) and with plain pandas group-bys (buyers, repeat rate, revenue);
they share no code with :mod:`clv.kpis`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from clv.config import DataConfig
from clv.data import AMOUNT, CUSTOMER, DATE, TransactionLog, clean_transactions, day_start
from clv.data.compact import DAY, day_number
from clv.kpis import (
    lapse_counts,
    lapse_days,
    lapse_events,
    month_buyers,
    monthly_table,
    period_summary,
    value_segments_table,
)
from clv.kpis.tables import _month_sql


def reference_monthly_table(
    log: TransactionLog, as_of: pd.Timestamp, inactivity_days: int = 365
) -> pd.DataFrame:
    """Per calendar month to ``as_of``: actives, new, lost, rates and revenue, counted customer by
    customer and day by day from the definitions (not from event arrays, as clv does):

    - a customer is *active* at the end of day t when one of their purchases p ≤ t has
      t − p < inactivity_days;
    - *lost* on p + inactivity_days when purchase p is followed by none within that window (a
      loss after ``as_of`` is not counted); *reactivated* by a purchase more than that window
      after the previous one; *new* on the first purchase.
    """
    as_of = pd.Timestamp(as_of).normalize()
    window = pd.Timedelta(days=inactivity_days)
    seen = log.frame[log.frame[DATE] <= as_of]
    days = {c: sorted(g[DATE]) for c, g in seen.groupby(CUSTOMER)}

    def active(day: pd.Timestamp, inclusive: bool) -> int:
        end = day if inclusive else day - pd.Timedelta(days=1)
        return sum(any(p <= end and end - p < window for p in ps) for ps in days.values())

    def events(kind: str) -> list[pd.Timestamp]:
        out = []
        for ps in days.values():
            if kind == "acquired":
                out.append(ps[0])
            for k, p in enumerate(ps):
                following = ps[k + 1] if k + 1 < len(ps) else None
                lapses = following is None or following - p > window
                if kind == "lost" and lapses and p + window <= as_of:
                    out.append(p + window)
                if kind == "reactivated" and k > 0 and p - ps[k - 1] > window:
                    out.append(p)
        return out

    def within(kind: str, start: pd.Timestamp, end: pd.Timestamp) -> int:
        return sum(start <= d <= end for d in events(kind))

    firsts = log.frame.groupby(CUSTOMER)[DATE].min()
    tx = log.frame[log.frame[DATE] <= as_of]
    tx = tx.assign(first=tx[CUSTOMER].map(firsts))
    rows = []
    for month in pd.period_range(firsts.min(), as_of, freq="M"):
        start = month.start_time.normalize()
        end = min(month.end_time.normalize(), as_of)
        active_start, active_end = active(start, inclusive=False), active(end, inclusive=True)
        new, lost = within("acquired", start, end), within("lost", start, end)
        in_month = tx[(tx[DATE] >= start) & (tx[DATE] <= end)]
        buyers = in_month.groupby(CUSTOMER)
        repeat = (buyers[DATE].min() > buyers["first"].first()) | (buyers.size() > 1)
        average = (active_start + active_end) / 2
        revenue = float(in_month[AMOUNT].sum()) if AMOUNT in in_month else float("nan")
        rows.append(
            {
                "month": str(month),
                "active_start": active_start,
                "new": new,
                "reactivated": within("reactivated", start, end),
                "lost": lost,
                "active_end": active_end,
                "churn_rate": lost / average if average else float("nan"),
                "retention_rate": (active_end - new) / active_start
                if active_start
                else float("nan"),
                "buyers": int(buyers.ngroups),
                "repeat_purchase_rate": float(repeat.mean()) if buyers.ngroups else float("nan"),
                "revenue": revenue,
                "revenue_per_active": revenue / average if average else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def reference_repeat_rate(log: TransactionLog, start: pd.Timestamp, as_of: pd.Timestamp) -> float:
    frame = log.frame
    tx = frame[(frame[DATE] >= start) & (frame[DATE] <= as_of)]
    days_per_buyer = tx.groupby(CUSTOMER).size()
    return float((days_per_buyer >= 2).mean()) if len(days_per_buyer) else float("nan")


logs = st.lists(
    st.tuples(st.integers(0, 30), st.integers(0, 400), st.floats(0.0, 100.0)),
    min_size=1,
    max_size=120,
)


@settings(max_examples=40, deadline=None)
@given(logs, st.integers(100, 420), st.sampled_from([20, 60, 365]))
def test_monthly_table_equals_the_pandas_reference(rows, as_of_day, inactivity):
    raw = pd.DataFrame(
        {
            "customer_id": [f"c{c:03d}" for c, _, _ in rows],
            "date": pd.Timestamp("2020-01-01") + pd.to_timedelta([d for _, d, _ in rows], "D"),
            "amount": [round(a, 2) for _, _, a in rows],
        }
    )
    log = clean_transactions(raw, DataConfig())
    as_of = pd.Timestamp("2020-01-01") + pd.Timedelta(days=as_of_day)
    if log.frame[DATE].min() > as_of:
        return
    ours = monthly_table(log, as_of, inactivity)
    theirs = reference_monthly_table(log, as_of, inactivity)
    # the events' SQL (what a log held by Spark runs) counts what the array code finds
    events = lapse_events(log, as_of, inactivity)
    found = events.groupby(["event", "date"]).size()
    counts = lapse_counts(log, as_of, inactivity)
    dates = pd.DatetimeIndex(day_start(counts["day"].to_numpy()))
    pd.testing.assert_series_equal(
        counts.set_index([counts["event"], dates])["n"], found, check_names=False, check_dtype=False
    )
    pd.testing.assert_frame_equal(ours, theirs, check_dtype=False)
    _assert_months_sql_equals_arrays(log, as_of)
    period = period_summary(log, ours, as_of, months=6)
    start = pd.Period(period["from"], "M").start_time
    expected = reference_repeat_rate(log, start, as_of)
    assert (math.isnan(expected) and math.isnan(period["repeat_purchase_rate"])) or math.isclose(
        period["repeat_purchase_rate"], expected
    )
    segments = value_segments_table(log, as_of, 6, {"top": 0.2}, "rest")
    assert (
        segments["customers"].sum() == log.frame.loc[log.frame[DATE] <= as_of, CUSTOMER].nunique()
    )
    period_rows = log.frame[(log.frame[DATE] >= start) & (log.frame[DATE] <= as_of)]
    assert np.isclose(segments["revenue"].sum(), period_rows[AMOUNT].sum())


def _assert_months_sql_equals_arrays(log: TransactionLog, as_of: pd.Timestamp) -> None:
    """The months' SQL (what a log held by Spark runs) finds what the array pass finds."""
    view = log.compact
    sql = view.run(_month_sql(view.has_amounts, view.month(DAY)), {"end": day_number(as_of)})
    sql = sql.assign(month=pd.to_datetime(sql["month"])).sort_values("month", ignore_index=True)
    arrays = month_buyers(log, as_of)
    assert arrays["buyers"].sum() > 0
    pd.testing.assert_frame_equal(arrays, sql, check_dtype=False, rtol=1e-12)


def test_months_and_lapses_by_blocks_of_customers_equal_one_block(sample_log, monkeypatch):
    """Blocks of a few rows (the passes run in blocks of whole customers on large logs): every
    customer's months and lapses are counted once, whichever block they fall in, and the months
    equal the SQL's."""
    import sys

    whole = month_buyers(sample_log, pd.Timestamp("1997-09-30"))
    lapses = lapse_days(sample_log, pd.Timestamp("1997-09-30"), 90)
    monkeypatch.setattr(sys.modules["clv.data.compact"], "BLOCK_ROWS", 7)
    for kind, days in lapse_days(sample_log, pd.Timestamp("1997-09-30"), 90).items():
        np.testing.assert_array_equal(days, lapses[kind])
        assert len(days) > 0
    for as_of in ("1997-01-15", "1997-09-30", "1998-06-30"):
        _assert_months_sql_equals_arrays(sample_log, pd.Timestamp(as_of))
    blocks = month_buyers(sample_log, pd.Timestamp("1997-09-30"))
    pd.testing.assert_frame_equal(blocks, whole, rtol=1e-12)
    assert len(whole) == 9 and whole["buyers"].iloc[0] > 0


def test_value_tiers_read_a_forecast_in_id_order_as_one_in_any_order(sample_log):
    """The model's CLV comes in the customers' id order (the RFM table's); the tiers read it by
    position then, and by id otherwise (another order, customers missing): the same table."""
    as_of = pd.Timestamp("1997-09-30")
    ids = sample_log.compact.per_customer(
        f"SELECT DISTINCT {CUSTOMER} FROM tx WHERE {DAY} <= $end", {"end": day_number(as_of)}
    )[CUSTOMER]
    clv = pd.Series(np.random.default_rng(3).gamma(0.5, 40.0, len(ids)), index=pd.Index(ids))
    in_order = value_segments_table(sample_log, as_of, 6, {"top": 0.2, "middle": 0.5}, "rest", clv)
    shuffled = clv.sample(frac=1.0, random_state=1)
    assert not shuffled.index.equals(clv.index)
    by_id = value_segments_table(
        sample_log, as_of, 6, {"top": 0.2, "middle": 0.5}, "rest", shuffled
    )
    pd.testing.assert_frame_equal(in_order, by_id)
    assert in_order["customers"].sum() == len(ids)
    assert in_order["segment"].tolist() == ["top", "middle", "rest"]
    # a customer the forecast leaves out ranks at 0: the last tier
    fewer = value_segments_table(
        sample_log, as_of, 6, {"top": 0.2, "middle": 0.5}, "rest", clv.iloc[1:]
    )
    assert fewer["customers"].sum() == len(ids)
