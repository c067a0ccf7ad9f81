"""RFM and calibration/holdout tables, built with DuckDB SQL from a cleaned log.

Definitions (DOMAIN.md §1), for a time unit of ``d`` days (day 1, week 7, month 365.25/12):

- ``frequency`` x: number of repeat transactions (purchase days after the first);
- ``recency`` t_x: (last purchase day − first purchase day) / d, **continuous**;
- ``T``: (end of the observation window − first purchase day) / d, continuous;
- ``monetary_value``: mean amount of the repeat transactions (first excluded), 0 when x = 0.

The observation window ends on ``observation_end`` (a day, inclusive). In a calibration/holdout
split, calibration uses the days up to ``calibration_end`` (inclusive); the holdout counts repeat
transactions in (calibration_end, observation_end] for the customers seen in calibration, and
lasts ``(observation_end − calibration_end) / d``.
"""

from __future__ import annotations

import pandas as pd

from clv.config import DAYS_PER_UNIT
from clv.data import AMOUNT, CUSTOMER, DATE

RFM_COLUMNS = ["customer_id", "frequency", "recency", "T", "monetary_value"]


def _rfm_sql(has_amounts: bool) -> str:
    monetary = (
        f"CASE WHEN COUNT(*) > 1 THEN (SUM({AMOUNT}) - arg_min({AMOUNT}, {DATE})) / (COUNT(*) - 1)"
        " ELSE 0 END::DOUBLE AS monetary_value"
        if has_amounts
        else "NULL::DOUBLE AS monetary_value"
    )
    return f"""
        SELECT {CUSTOMER},
               (COUNT(*) - 1)::BIGINT AS frequency,
               date_diff('day', MIN({DATE}), MAX({DATE})) / $unit AS recency,
               date_diff('day', MIN({DATE}), $end) / $unit AS T,
               {monetary}
        FROM tx
        WHERE {DATE} <= $end
        GROUP BY {CUSTOMER}
    """


def _connect(transactions: pd.DataFrame):
    import duckdb

    con = duckdb.connect()
    con.register("tx", transactions)
    return con


def _finish(frame: pd.DataFrame, has_amounts: bool) -> pd.DataFrame:
    frame[CUSTOMER] = frame[CUSTOMER].astype("str")
    if not has_amounts:
        frame = frame.drop(columns="monetary_value")
    return frame.sort_values(CUSTOMER, ignore_index=True)


def build_rfm(
    transactions: pd.DataFrame, observation_end: pd.Timestamp, time_unit: str
) -> pd.DataFrame:
    """Compute RFM per customer from a cleaned (same-day merged) log.

    Parameters
    ----------
    transactions : pandas.DataFrame
        ``TransactionLog.frame``: ``customer_id``, ``date`` and optionally ``amount``.
    observation_end : pandas.Timestamp
        Last day of the observation window (inclusive); later rows are not used.
    time_unit : {"day", "week", "month"}

    Returns
    -------
    pandas.DataFrame
        ``customer_id, frequency, recency, T`` and ``monetary_value`` when the log has amounts,
        one row per customer with a purchase up to ``observation_end``, sorted by id.

    Examples
    --------
    >>> import pandas as pd
    >>> tx = pd.DataFrame({"customer_id": ["a", "a", "b"],
    ...                    "date": pd.to_datetime(["2020-01-01", "2020-01-15", "2020-01-08"]),
    ...                    "amount": [10.0, 30.0, 5.0]})
    >>> build_rfm(tx, pd.Timestamp("2020-01-29"), "week")
      customer_id  frequency  recency    T  monetary_value
    0           a          1      2.0  4.0            30.0
    1           b          0      0.0  3.0             0.0
    """
    has_amounts = AMOUNT in transactions.columns
    with _connect(transactions) as con:
        frame = con.execute(
            _rfm_sql(has_amounts),
            {"unit": DAYS_PER_UNIT[time_unit], "end": pd.Timestamp(observation_end).normalize()},
        ).df()
    return _finish(frame, has_amounts)


def build_calibration_holdout(
    transactions: pd.DataFrame,
    calibration_end: pd.Timestamp,
    observation_end: pd.Timestamp,
    time_unit: str,
) -> pd.DataFrame:
    """Compute calibration RFM and holdout outcomes per customer.

    Parameters
    ----------
    transactions : pandas.DataFrame
        ``TransactionLog.frame``.
    calibration_end : pandas.Timestamp
        Last day of the calibration period (inclusive).
    observation_end : pandas.Timestamp
        Last day of the holdout (inclusive); must be after ``calibration_end``.
    time_unit : {"day", "week", "month"}

    Returns
    -------
    pandas.DataFrame
        The RFM columns for the calibration period, plus ``frequency_holdout`` (transactions in
        the holdout), ``revenue_holdout`` (their total amount, when the log has amounts) and
        ``duration_holdout`` (in the time unit), for every customer with a calibration purchase.
    """
    cal_end = pd.Timestamp(calibration_end).normalize()
    obs_end = pd.Timestamp(observation_end).normalize()
    if obs_end <= cal_end:
        raise ValueError(
            f"observation_end {obs_end.date()} must be after calibration_end {cal_end.date()}"
        )
    has_amounts = AMOUNT in transactions.columns
    revenue = f", SUM({AMOUNT})::DOUBLE AS revenue_holdout" if has_amounts else ""
    revenue_col = (
        "COALESCE(hold.revenue_holdout, 0)::DOUBLE AS revenue_holdout," if has_amounts else ""
    )
    sql = f"""
        WITH cal AS ({_rfm_sql(has_amounts)}),
        hold AS (
            SELECT {CUSTOMER}, COUNT(*)::BIGINT AS frequency_holdout{revenue}
            FROM tx WHERE {DATE} > $end AND {DATE} <= $obs_end GROUP BY {CUSTOMER}
        )
        SELECT cal.*,
               COALESCE(hold.frequency_holdout, 0)::BIGINT AS frequency_holdout,
               {revenue_col}
               date_diff('day', $end, $obs_end) / $unit AS duration_holdout
        FROM cal LEFT JOIN hold USING ({CUSTOMER})
    """
    with _connect(transactions) as con:
        frame = con.execute(
            sql, {"unit": DAYS_PER_UNIT[time_unit], "end": cal_end, "obs_end": obs_end}
        ).df()
    return _finish(frame, has_amounts)
