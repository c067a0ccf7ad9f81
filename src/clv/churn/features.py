"""Churn features and labels: behaviour as of a feature cutoff (DuckDB SQL, by blocks of
customers), the purchase model's outputs, customer attributes and surveys, and the leak-free
window a classifier is trained on."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

from clv import units
from clv.data.compact import AMOUNT, CUSTOMER, DAY, Compact, compact, day_number, day_start
from clv.features import rfm_select
from clv.models.fitted import PurchaseModel
from clv.models.groups import per_customer
from clv.nps import is_detractor

WINDOWS_DAYS = (30, 90, 180, 365)


MONOTONE = {
    "p_no_purchase": 1,
    "since_last": 1,
    "p_alive": -1,
    "expected_purchases": -1,
    **{f"n_{d}d": -1 for d in WINDOWS_DAYS},
}


MIN_CUSTOMERS = 50  # fewer in a training window, or fewer than 5 of a class: BTYD score only


def _window_sql(has_amounts: bool, has_gaps: bool) -> str:
    counts = ",\n".join(
        f"COUNT(*) FILTER (WHERE {DAY} > $cut - {d})::DOUBLE AS n_{d}d"
        + (
            f", COALESCE(SUM({AMOUNT}) FILTER (WHERE {DAY} > $cut - {d}), 0)::DOUBLE AS spend_{d}d"
            if has_amounts
            else ""
        )
        for d in WINDOWS_DAYS
    )
    spend = (
        f", SUM({AMOUNT})::DOUBLE AS total_spend, "
        f"(max_by({AMOUNT}, {DAY}) / NULLIF(AVG({AMOUNT}), 0))::DOUBLE AS spend_trend"
        if has_amounts
        else ""
    )
    rows = (
        f"SELECT * REPLACE (NULLIF(gap, -1) AS gap) FROM tx WHERE {DAY} <= $cut"
        if has_gaps
        else f"""SELECT *, {DAY} - LAG({DAY}) OVER w AS gap
            FROM tx WHERE {DAY} <= $cut
            WINDOW w AS (PARTITION BY {CUSTOMER} ORDER BY {DAY})"""
    )
    return f"""
        WITH d AS ({rows})
        SELECT {rfm_select(has_amounts, "$cut")},
               ($cut - MAX({DAY})) / $unit AS since_last,
               {counts},
               AVG(gap) / $unit AS ipt_mean,
               STDDEV_SAMP(gap) / $unit AS ipt_std
               {spend}
        FROM d GROUP BY {CUSTOMER}
    """


def behaviour_features(
    transactions: pd.DataFrame | Compact, cutoff: pd.Timestamp, time_unit: str
) -> pd.DataFrame:
    """RFM and the behavioural features of every customer with a purchase up to ``cutoff``, in
    one DuckDB pass (no model outputs), sorted by id. An ordered compact log gives the
    inter-purchase gaps block by block (:meth:`Compact.per_customer`); otherwise a window
    function computes them."""
    return next(behaviour_blocks(transactions, cutoff, time_unit))


def behaviour_blocks(
    transactions: pd.DataFrame | Compact,
    cutoff: pd.Timestamp,
    time_unit: str,
    customers: int | None = None,
) -> Iterator[pd.DataFrame]:
    """:func:`behaviour_features` in blocks of about ``customers`` customers, in id order (one
    block of everyone when None; :meth:`Compact.per_customer_blocks`)."""
    log = compact(transactions)
    return log.per_customer_blocks(
        _window_sql(log.has_amounts, log.ordered),
        {"cut": day_number(cutoff), "unit": units.days(1.0, time_unit)},
        gaps=True,
        customers=customers,
    )


def churn_features(
    transactions: pd.DataFrame | Compact,
    cutoff: pd.Timestamp,
    time_unit: str,
    btyd: PurchaseModel,
    horizon: float,
    attributes: pd.DataFrame | None = None,
    surveys: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Build the classifier's features for every customer with a purchase up to ``cutoff``.

    Parameters
    ----------
    transactions : pandas.DataFrame or Compact
        A cleaned log (``TransactionLog.frame``, or its ``compact`` view).
    cutoff : pandas.Timestamp
        Last day of data the features may use.
    time_unit : str
        Unit of the time features and of ``horizon``.
    btyd : PurchaseModel
        BG/NBD fitted on data up to ``cutoff``; its outputs become features.
    horizon : float
        Churn horizon H, in ``time_unit``.
    attributes : pandas.DataFrame, optional
        ``customer_id`` plus attribute columns.
    surveys : pandas.DataFrame, optional
        Survey answers (``customer_id``, ``date``, ``nps``): the latest answer on or before
        ``cutoff`` gives ``nps_latest``, ``days_since_survey`` and ``nps_detractor``.

    Returns
    -------
    pandas.DataFrame
        RFM columns and features, one row per customer, sorted by id.
    """
    cut = pd.Timestamp(cutoff).normalize()
    frame = behaviour_features(transactions, cut, time_unit)
    return with_model_features(frame, cut, btyd, horizon, attributes, surveys)


def scores_by_block(
    transactions: pd.DataFrame | Compact,
    cutoff: pd.Timestamp,
    time_unit: str,
    btyd: PurchaseModel,
    horizon: float,
    score: Callable[[pd.DataFrame], dict[str, np.ndarray]],
    customers: int | None,
    attributes: pd.DataFrame | None = None,
    surveys: pd.DataFrame | None = None,
) -> tuple[pd.Series, dict[str, np.ndarray]]:
    """Score every customer's :func:`churn_features` without holding them all: the features are
    built for blocks of about ``customers`` customers (:func:`behaviour_blocks`) and only
    ``score(features)`` of each block is kept.

    Returns
    -------
    tuple of pandas.Series and dict
        The customers' ids in id order, and each named score of ``score`` over all of them, in
        the same order.
    """
    ids, parts = [], []
    for behaviour in behaviour_blocks(transactions, cutoff, time_unit, customers):
        frame = with_model_features(behaviour, cutoff, btyd, horizon, attributes, surveys)
        ids.append(frame[CUSTOMER])
        parts.append(score(frame))
    return (
        pd.concat(ids, ignore_index=True),
        {k: np.concatenate([part[k] for part in parts]) for k in parts[0]},
    )


def with_model_features(
    frame: pd.DataFrame,
    cutoff: pd.Timestamp,
    btyd: PurchaseModel,
    horizon: float,
    attributes: pd.DataFrame | None = None,
    surveys: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Add BG/NBD outputs over ``horizon``, customer attributes and survey features to
    :func:`behaviour_features` output (see :func:`churn_features`)."""
    x, t_x, T = (frame[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    frame = frame.assign(  # by blocks of customers (clv.models.groups.SCORE_ROWS)
        p_alive=per_customer(btyd, frame, lambda m, r: m.p_alive(x[r], t_x[r], T[r])),
        expected_purchases=per_customer(
            btyd, frame, lambda m, r: m.expected_purchases(horizon, x[r], t_x[r], T[r])
        ),
        p_no_purchase=per_customer(
            btyd, frame, lambda m, r: m.p_no_purchase(horizon, x[r], t_x[r], T[r])
        ),
    )
    return with_customer_features(frame, cutoff, attributes, surveys)


def with_customer_features(
    frame: pd.DataFrame,
    cutoff: pd.Timestamp,
    attributes: pd.DataFrame | None = None,
    surveys: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Join customer attributes and survey features (as of ``cutoff``) to a per-customer
    table (see :func:`churn_features`)."""
    if attributes is not None and attributes.shape[1] > 1:
        frame = frame.merge(attributes, on=CUSTOMER, how="left", validate="one_to_one")
    if surveys is not None:
        frame = frame.merge(survey_features(surveys, cutoff), on=CUSTOMER, how="left")
    return frame


SURVEY_FEATURES = ["nps_latest", "days_since_survey", "nps_detractor"]


def survey_features(surveys: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Latest NPS answer on or before ``cutoff`` per customer: score, days since, detractor flag."""
    known = surveys[(surveys["date"] <= cutoff) & surveys["nps"].notna()]
    latest = known.sort_values("date").groupby(CUSTOMER).tail(1)
    return pd.DataFrame(
        {
            CUSTOMER: latest[CUSTOMER].astype("str").to_numpy(),
            "nps_latest": latest["nps"].to_numpy(dtype=float),
            "days_since_survey": (cutoff - latest["date"]).dt.days.to_numpy(dtype=float),
            "nps_detractor": is_detractor(latest["nps"]).astype(float),
        },
        columns=[CUSTOMER, *SURVEY_FEATURES],
    )


#: A churn window's customers need history before its feature cutoff: at least
#: :data:`MIN_CUSTOMERS` of them must have bought ``HISTORY_SHARE × L`` or more before it, where
#: ``L`` is the window's label length (a classifier cannot tell a lapsed customer from a new one
#: on a day of history). A window shorter than the horizon may be used down to
#: ``SHORTEST_SHARE × H``; a log too young even for that has no leak-free window.
HISTORY_SHARE, SHORTEST_SHARE = 0.5, 0.5


def leak_free_window(
    transactions: pd.DataFrame | Compact,
    cutoff: pd.Timestamp,
    horizon_days: int,
    time_unit: str = "day",
) -> tuple[pd.Timestamp, str | None]:
    """The feature cutoff of the training window that ends at ``cutoff``, and a note if shortened.

    The window is ``(cutoff − H, cutoff]`` (transactions after ``cutoff`` are ignored), used
    when at least :data:`MIN_CUSTOMERS` customers bought at least ``H / 2`` before its feature
    cutoff ``cutoff − H`` (:data:`HISTORY_SHARE`). When the log is too young for that, the label
    window is shortened to the longest ``L`` that has such customers at ``cutoff − L``, down to
    ``H / 2`` (:data:`SHORTEST_SHARE`), and the note says so. With fewer than
    :data:`MIN_CUSTOMERS` customers there is no classifier whatever the window
    (:func:`churn_table` gives the BG/NBD score and says so); the window is then the full one,
    or the later half of the log when nobody bought before the full one's feature cutoff.

    Raises
    ------
    DataValidationError
        When the log is too young even for a window of ``H / 2``: how old it is, what the
        horizon needs, and the longest horizon it has room for. (The training run skips its
        churn classifier then: :mod:`clv.stages`.)
    """
    from clv.errors import DataValidationError

    cut = pd.Timestamp(cutoff)
    days = (
        compact(transactions)
        .run(
            f"SELECT MIN({DAY}) AS first_day FROM tx WHERE {DAY} <= $cut GROUP BY {CUSTOMER} "
            "ORDER BY first_day",
            {"cut": day_number(cut)},
        )["first_day"]
        .to_numpy()
    )
    firsts = day_start(days)
    H = float(horizon_days)
    if len(firsts) < MIN_CUSTOMERS:  # no classifier whatever the window (churn_table says so)
        if len(firsts) == 0 or pd.Timestamp(firsts[-1]) <= cut - pd.Timedelta(days=H):
            return cut - pd.Timedelta(days=horizon_days), None
        start = (pd.Timestamp(firsts[0]) + (cut - pd.Timestamp(firsts[0])) / 2).normalize()
        return min(start, cut - pd.Timedelta(days=1)), None
    # room: days from the MIN_CUSTOMERS-th customer's first purchase to the cutoff; a window of
    # L label days needs (1 + HISTORY_SHARE) · L of them
    room = (cut - pd.Timestamp(firsts[MIN_CUSTOMERS - 1])).days
    longest = room / (1.0 + HISTORY_SHARE)
    if longest >= H:
        return cut - pd.Timedelta(days=horizon_days), None
    if longest < SHORTEST_SHARE * H or longest < 1:
        raise DataValidationError(_too_young(firsts, cut, H, room, time_unit))
    label_days = int(longest)
    start = cut - pd.Timedelta(days=label_days)
    note = (
        f"the log before {cut.date()} is too short for a leak-free churn window of "
        f"{horizon_days} days; the classifier uses the longest feasible one, features to "
        f"{start.date()} and labels in ({start.date()}, {cut.date()}] ({label_days} days)"
    )
    return start, note


def _too_young(firsts: np.ndarray, cut: pd.Timestamp, H: float, room: int, unit: str) -> str:
    """Why a log has no leak-free churn window of ``H`` days at ``cut``
    (:func:`leak_free_window`)."""
    step = units.days(1.0, unit)

    def n(days: float) -> str:
        return f"{days / step:.3g} {unit}s"

    age = (cut - pd.Timestamp(firsts[0])).days if len(firsts) else 0
    need = (1.0 + HISTORY_SHARE) * H
    found = f"its {MIN_CUSTOMERS}th customer first bought {n(room)} before it"
    fits = room / (1.0 + HISTORY_SHARE) / SHORTEST_SHARE
    return (
        f"the log is {n(age)} old at {cut.date()}; a leak-free {H / step:.3g}-{unit} churn "
        f"window needs {n(need)} ({n(H)} of labels after its feature cutoff, and "
        f"{MIN_CUSTOMERS} customers who bought {n(HISTORY_SHARE * H)} or more before it), or "
        f"{n(SHORTEST_SHARE * need)} for one shortened to half the horizon; {found}. A churn "
        f"horizon of at most {n(fits)} fits this log (--churn-horizon)"
    )


def churn_labels(
    transactions: pd.DataFrame | Compact,
    customers: pd.Series,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> np.ndarray:
    """1 where a customer makes no purchase in (start, end], else 0 (1 for an id the log does
    not have). The window's buyers come back as codes, and the customers' text ids are looked
    up among the log's in Arrow: no join on text ids (at 5.5M customers it was the scorecard's
    high point)."""
    log = compact(transactions)
    bought = log.run(
        f"SELECT DISTINCT {CUSTOMER} FROM tx WHERE {DAY} > $start AND {DAY} <= $end",
        {"start": day_number(start), "end": day_number(end)},
    )
    buyer = np.zeros(len(log.ids) + 1, dtype=bool)  # the last place: ids the log does not have
    buyer[bought[CUSTOMER].to_numpy()] = True
    return (~buyer[log.codes_of(customers, missing=len(log.ids))]).astype(int)
