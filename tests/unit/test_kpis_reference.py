"""The KPI tables, computed on the compact log, equal a plain pandas reference on random logs.

The reference functions below are the straightforward pandas definitions (the first
implementation of :mod:`clv.kpis`, which copied and regrouped the log per month).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from clv.config import DataConfig
from clv.data import AMOUNT, CUSTOMER, DATE, TransactionLog, clean_transactions
from clv.kpis import monthly_table, period_summary, value_segments_table


def reference_lapse_events(
    log: TransactionLog, as_of: pd.Timestamp, inactivity_days: int
) -> pd.DataFrame:
    """Acquisition, loss and reactivation events up to ``as_of``, one row each.

    A customer is lost ``inactivity_days`` after a purchase not followed by another within that
    window (on or before ``as_of``), and *reactivated* by the purchase that ends such a lapse.
    Active on day t = acquired − lost + reactivated, counting events on or before t.
    """
    tx = log.frame.loc[log.frame[DATE] <= as_of, [CUSTOMER, DATE]].sort_values([CUSTOMER, DATE])
    window = pd.Timedelta(days=inactivity_days)
    following = tx.groupby(CUSTOMER)[DATE].shift(-1)
    lapse = following.isna() | (following - tx[DATE] > window)
    lost = (tx[DATE] + window)[lapse]
    lost = lost[lost <= as_of]
    previous = tx.groupby(CUSTOMER)[DATE].shift(1)
    back = tx[DATE][previous.notna() & (tx[DATE] - previous > window)]
    first = tx.groupby(CUSTOMER)[DATE].min()
    return pd.concat(
        [
            pd.DataFrame({"event": "acquired", "date": first.to_numpy()}),
            pd.DataFrame({"event": "lost", "date": lost.to_numpy()}),
            pd.DataFrame({"event": "reactivated", "date": back.to_numpy()}),
        ],
        ignore_index=True,
    )


def reference_monthly_table(
    log: TransactionLog, as_of: pd.Timestamp, inactivity_days: int = 365
) -> pd.DataFrame:
    """Per calendar month to ``as_of``: actives, new, lost, rates and revenue (module docstring)."""
    as_of = pd.Timestamp(as_of).normalize()
    events = reference_lapse_events(log, as_of, inactivity_days)
    dates = {k: np.sort(g["date"].to_numpy()) for k, g in events.groupby("event")}
    dates = {
        k: dates.get(k, np.array([], dtype="datetime64[ns]"))
        for k in ("acquired", "lost", "reactivated")
    }

    def active(day: pd.Timestamp, inclusive: bool) -> int:
        side = "right" if inclusive else "left"
        t = np.datetime64(day)
        return int(
            np.searchsorted(dates["acquired"], t, side)
            - np.searchsorted(dates["lost"], t, side)
            + np.searchsorted(dates["reactivated"], t, side)
        )

    def within(kind: str, start: pd.Timestamp, end: pd.Timestamp) -> int:
        d = dates[kind]
        return int(
            np.searchsorted(d, np.datetime64(end), "right")
            - np.searchsorted(d, np.datetime64(start), "left")
        )

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
    pd.testing.assert_frame_equal(ours, theirs, check_dtype=False)
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
