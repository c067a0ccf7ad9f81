"""Customers acquired, lost and reactivated: lapse events by blocks of customers, as day
numbers, and their counts per month."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from clv.data.compact import CUSTOMER, DAY, customer_blocks, day_number, day_start, sorted_arrays
from clv.data.log import TransactionLog

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
