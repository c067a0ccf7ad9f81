"""Churn classifier: LightGBM on behavioural features, checked against the BTYD churn score.

**Label.** A customer *churns* over a horizon H when they make no purchase in (cutoff, cutoff + H].

**Leak-free windows.** Labels need the future, so a classifier is always trained one window
back: features use transactions up to ``c − H`` and labels come from ``(c − H, c]``. The model
that is *evaluated* on ``(c, c + H]`` (features up to c) is trained that way with c the
calibration cutoff, and sees nothing after c. The model that is *shipped* for scoring is retrained
on the latest window: features up to ``end − H``, labels from ``(end − H, end]``.

**Features** (:func:`churn_features`, DuckDB SQL, all as of the feature cutoff): RFM, time since
the last purchase, tenure, purchase counts and spend in the last 30/90/180/365 days,
inter-purchase time mean and spread, spend trend (last purchase ÷ mean purchase), and the BG/NBD
outputs P(alive), expected purchases and P(no purchase) over H, from a BG/NBD fitted on the same
data. Customer attributes (extra columns of a customer table) join as they are; text columns
become pandas categoricals, which LightGBM splits on natively.

**Which score ships.** Five-fold out-of-fold predictions on the training window (on a stratified
sample of at most ``train.churn_max_customers`` customers) compare LightGBM,
blends of it with the BG/NBD P(no purchase) (weights 0.75, 0.5, 0.25) and the BG/NBD score alone,
by ROC AUC. A challenger must beat the BG/NBD score significantly (one-sided 5 %, z > 1.645
with DeLong's standard error of the paired AUC difference): on small logs the differences are
mostly noise (on the 600-customer apparel log a blend "won" validation by 0.004 and then lost
the holdout), and the BG/NBD score is the safer default. Among the eligible, the best ships (the
simpler on a tie); the decision and the numbers are recorded. This uses only the training window,
never the evaluation holdout. P(alive), P(no purchase), expected purchases, time since the last
purchase and the recent purchase counts carry monotone constraints.

**Calibration.** Fitted on the out-of-fold predictions, in one of two forms, cross-validated over
the same five folds and recorded in ``validation["calibration"]`` (log losses and the test):

- ``platt_btyd`` (preferred): a logistic regression on the logits of the chosen score *and* of
  the BG/NBD P(no purchase);
- ``platt``: a logistic regression on the logit of the chosen score alone (Platt scaling;
  monotone, so the ranking and ROC AUC are the chosen score's).

Why the preference: a LightGBM score is compressed at its ends, and hundreds of customers share
its lowest leaves. Platt scaling maps it monotonically, so on CDNOW all of the 183 heaviest
buyers got 0.1145 — on the evaluation holdout such customers churned at 1.5 % — however sure the
purchase model was that they would buy. The BG/NBD term breaks those ties with the purchase
history and lets the probability move towards 0 and 1 where that history is decisive. Plain
Platt ships only when its cross-validated log loss (a proper score) is lower by a significant
margin (paired, one-sided 5 %). An isotonic map was tried too: better calibrated in the tails on
the CDNOW holdout, but its steps tie customers (−0.005 ROC AUC on the CDNOW sample) and it lost
on cross-validated log loss in the training window.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from clv import resources, units
from clv.background import check, stop_callback
from clv.config import ChurnConfig
from clv.data.compact import AMOUNT, CUSTOMER, DAY, Compact, compact, day_number, day_start
from clv.features import build_rfm, rfm_select
from clv.models.fitted import PurchaseModel
from clv.models.fitting import churn_feature_model
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


def _feature_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c != CUSTOMER]


def _design(
    frame: pd.DataFrame, columns: list[str], categories: dict[str, list[str]]
) -> pd.DataFrame:
    """The model matrix: numeric columns as float, categorical ones with fixed categories."""
    out = {}
    for col in columns:
        values = frame[col] if col in frame else pd.Series(np.nan, index=frame.index)
        if col in categories:
            out[col] = pd.Categorical(
                values.astype("str").where(values.notna()), categories=categories[col]
            )
        else:
            out[col] = pd.to_numeric(values, errors="coerce").astype(float)
    return pd.DataFrame(out, index=frame.index)


#: Customers per block of a booster's predictions (:meth:`ChurnModel.raw_score`): the model
#: matrix of 5.5M customers, and LightGBM's copy of it, held 1.8 GB at once.
PREDICT_ROWS = 500_000


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _lgb_params(columns: list[str], seed: int, settings: ChurnConfig, rows: int) -> dict[str, Any]:
    return {
        "objective": "binary",
        "learning_rate": settings.learning_rate,
        "num_leaves": settings.num_leaves,
        "min_data_in_leaf": settings.min_data_in_leaf,
        "feature_fraction": settings.feature_fraction,
        "bagging_fraction": settings.bagging_fraction,
        "bagging_freq": 1,
        "lambda_l2": settings.lambda_l2,
        "monotone_constraints": [MONOTONE.get(c, 0) for c in columns],
        "seed": seed,
        "deterministic": True,
        "num_threads": resources.lightgbm_threads(rows),
        "verbose": -1,
    }


@dataclass
class ChurnModel:
    """A trained churn score for horizon ``horizon`` (in ``time_unit``).

    ``choice`` is ``lightgbm``, ``blend`` or ``btyd``; the raw score is
    ``w · LightGBM + (1 − w) · BG/NBD P(no purchase)`` with ``w = blend_weight``, then calibrated:
    ``1 / (1 + exp(−(a · logit(score) + c · logit(BG/NBD P(no purchase)) + b)))`` (``c = 0`` for
    plain Platt scaling; see the module docstring).
    """

    horizon: float
    time_unit: str
    btyd: PurchaseModel | None  # None before the caller sets the scoring BG/NBD, or no classifier
    choice: str
    blend_weight: float
    platt: dict[str, Any]
    features: list[str] = field(default_factory=list)
    categories: dict[str, list[str]] = field(default_factory=dict)
    attributes: list[str] = field(default_factory=list)
    booster_text: str | None = None
    validation: dict[str, Any] = field(default_factory=dict)
    window: dict[str, Any] = field(default_factory=dict)
    _booster: Any = field(default=None, repr=False, compare=False)

    @property
    def has_classifier(self) -> bool:
        """False for :func:`without_classifier`'s score (the shipped purchase model's)."""
        return self.choice != FROM_PURCHASE_MODEL

    def _lgb(self) -> Any:
        if self._booster is None and self.booster_text is not None:
            import lightgbm as lgb

            self._booster = lgb.Booster(model_str=self.booster_text)
        return self._booster

    def raw_score(self, features: pd.DataFrame) -> np.ndarray:
        """The uncalibrated score (LightGBM, blend or BG/NBD) for a feature frame."""
        btyd = features["p_no_purchase"].to_numpy(dtype=float)
        if self.blend_weight <= 0 or self._lgb() is None:
            return btyd
        booster = self._lgb()
        # always a thread count: LightGBM's is process-wide (resources.lightgbm_threads)
        threads = resources.lightgbm_threads(len(features))
        parts = [  # the model matrix a block at a time (one float column a feature)
            booster.predict(
                _design(features.iloc[lo : lo + PREDICT_ROWS], self.features, self.categories),
                num_threads=threads,
            )
            for lo in range(0, len(features), PREDICT_ROWS)
        ]
        model = np.concatenate(parts) if parts else np.zeros(0)
        return self.blend_weight * model + (1.0 - self.blend_weight) * btyd

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of no purchase within the horizon."""
        btyd = features["p_no_purchase"].to_numpy(dtype=float)
        return calibrated(self.platt, self.raw_score(features), btyd)

    def to_dict(self) -> dict[str, Any]:
        """JSON part of the model (the booster is saved beside it in LightGBM's text format)."""
        return {
            "horizon": self.horizon,
            "time_unit": self.time_unit,
            "btyd": self.btyd.to_dict() if self.btyd else None,
            "choice": self.choice,
            "blend_weight": self.blend_weight,
            "platt": self.platt,
            "features": self.features,
            "categories": self.categories,
            "attributes": self.attributes,
            "validation": self.validation,
            "window": self.window,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], booster_text: str | None) -> ChurnModel:
        """Rebuild from :meth:`to_dict` output and the booster's text."""
        if data["blend_weight"] > 0 and booster_text is None:
            raise ValueError("the churn model's LightGBM file is missing")
        return cls(
            horizon=float(data["horizon"]),
            time_unit=data["time_unit"],
            btyd=PurchaseModel.from_dict(data["btyd"]) if data.get("btyd") else None,
            choice=data["choice"],
            blend_weight=float(data["blend_weight"]),
            platt=dict(data["platt"]),
            features=list(data["features"]),
            categories={k: list(v) for k, v in data["categories"].items()},
            attributes=list(data.get("attributes", [])),
            booster_text=booster_text,
            validation=data.get("validation", {}),
            window=data.get("window", {}),
        )


#: ``ChurnModel.choice`` of a bundle that ships no classifier (the churn stages were skipped,
#: :mod:`clv.stages`): churn probability is the shipped purchase model's P(no purchase) over the
#: horizon.
FROM_PURCHASE_MODEL = "purchase_model"


def without_classifier(horizon: float, time_unit: str, reason: str) -> ChurnModel:
    """The churn score of a run whose classifier could not be trained: the shipped purchase
    model's P(no purchase) within ``horizon``, uncalibrated (``validation.decision`` says why).

    Parameters
    ----------
    horizon : float
        The churn horizon H, in ``time_unit``.
    time_unit : str
        The bundle's time unit.
    reason : str
        Why there is no classifier (the skipped stage's reason).

    Returns
    -------
    ChurnModel
        With ``choice`` :data:`FROM_PURCHASE_MODEL`, no features and no booster.
    """
    return ChurnModel(
        horizon,
        time_unit,
        None,
        FROM_PURCHASE_MODEL,
        0.0,
        {"a": 1.0, "b": 0.0},
        validation={"decision": f"no churn classifier: {reason}"},
    )


#: The calibrations' ridge on their slopes, 1e-6 / 2 · ‖slopes‖² (the intercept is free): it
#: keeps a separable fit finite and moves no other fit measurably (scikit-learn's ``C = 1e6``).
PLATT_RIDGE = 1e-6


def _fit_platt(design: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Logistic regression on logit columns (practically unpenalized: :data:`PLATT_RIDGE`):
    ``a``, ``c``, ``b``.

    Newton's method with a backtracking line search, to the maximum of the penalized
    likelihood: the log likelihood's gain still possible (half the Newton decrement) below
    1e-10. scikit-learn's L-BFGS, used before, stops at its default tolerance short of it (on the
    1M-customer benchmark's window ``a`` = −0.0013 where the maximum has −0.0025). The choice
    among the calibrations (11 fits on 200k customers) took 0.72–0.82 s with it, 0.42 s now.
    """
    from scipy.special import expit

    A = np.column_stack([np.asarray(design, dtype=float), np.ones(len(design))])
    y = np.asarray(labels, dtype=float)
    ridge = np.full(A.shape[1], PLATT_RIDGE)
    ridge[-1] = 0.0

    def loss(w: np.ndarray) -> float:
        z = A @ w
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * ridge @ (w * w))

    w = np.zeros(A.shape[1])
    current = loss(w)
    for _ in range(200):
        q = expit(A @ w)
        gradient = A.T @ (q - y) + ridge * w
        hessian = (A * (q * (1.0 - q))[:, None]).T @ A + np.diag(ridge)
        try:
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:  # a constant column and no ridge left to lift it
            step = np.linalg.lstsq(hessian, gradient, rcond=None)[0]
        decrement = float(gradient @ step)
        if decrement / 2 < 1e-10:
            break
        t = 1.0
        while t > 1e-12:
            trial = w - t * step
            trial_loss = loss(trial)
            if trial_loss <= current - 1e-4 * t * decrement:
                break
            t /= 2
        else:  # no step lowers the loss any more: at the maximum to rounding
            break
        w, current = trial, trial_loss
    slopes = w[:-1]
    return {
        "a": float(slopes[0]),
        "c": float(slopes[1]) if len(slopes) > 1 else 0.0,
        "b": float(w[-1]),
    }


#: Preference among calibrations: the first ships unless the other has a significantly lower
#: cross-validated log loss (paired, one-sided 5 %).
CALIBRATIONS = ("platt_btyd", "platt")


def _calibration_design(method: str, score: np.ndarray, btyd: np.ndarray) -> np.ndarray:
    if method == "platt":
        return _logit(score).reshape(-1, 1)
    return np.column_stack([_logit(score), _logit(btyd)])


def calibrated(fit: dict[str, Any], score: np.ndarray, btyd: np.ndarray) -> np.ndarray:
    """Calibrated probability from raw scores and BG/NBD P(no purchase) (module docstring)."""
    z = fit["a"] * _logit(score) + fit["b"]
    if fit.get("c", 0.0) != 0.0:
        z = z + fit["c"] * _logit(btyd)
    return 1.0 / (1.0 + np.exp(-z))


def _choose_calibration(
    score: np.ndarray,
    btyd: np.ndarray,
    labels: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    min_z: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Cross-validate the calibrations (module docstring) and choose one: a richer one only when
    its log-loss gain has a paired z above ``min_z``."""
    methods = CALIBRATIONS if not np.array_equal(score, btyd) else ("platt",)
    losses = {}
    for method in methods:
        predicted, design = np.empty(len(labels)), _calibration_design(method, score, btyd)
        for train_rows, valid_rows in folds:
            fit = _fit_platt(design[train_rows], labels[train_rows])
            predicted[valid_rows] = calibrated(fit, score[valid_rows], btyd[valid_rows])
        p = np.clip(predicted, 1e-15, 1 - 1e-15)
        losses[method] = -(labels * np.log(p) + (1 - labels) * np.log1p(-p))
    chosen, tests = methods[0], {}
    for method in methods[1:]:
        gain = losses[chosen] - losses[method]  # > 0 where ``method`` is better
        se = float(gain.std(ddof=1) / np.sqrt(len(gain)))
        z = float(gain.mean() / se) if se > 0 else 0.0
        tests[method] = {"log_loss_gain": float(gain.mean()), "z": z}
        if z > min_z:
            chosen = method
    info = {
        "method": chosen,
        "cv_log_loss": {m: float(v.mean()) for m, v in losses.items()},
        "tests": tests,
    }
    fit = _fit_platt(_calibration_design(chosen, score, btyd), labels)
    return {"method": chosen, **fit}, info


@dataclass
class ChurnTable:
    """A leak-free window's training table for the churn classifier (:func:`churn_table`).

    ``early`` is the model the window ends with before any LightGBM (too few customers or of a
    class: the BG/NBD score); otherwise ``frame`` and ``labels`` are what LightGBM is
    cross-validated and trained on (:func:`fit_churn_table`), ``btyd`` the BG/NBD of its
    features. ``note`` is the window's note (:func:`leak_free_window`; None when the whole
    horizon fits).
    """

    horizon: float
    time_unit: str
    window: dict[str, Any]
    btyd: PurchaseModel | None = None
    frame: pd.DataFrame | None = None
    labels: np.ndarray | None = None
    attribute_columns: list[str] = field(default_factory=list)
    early: ChurnModel | None = None
    note: str | None = None

    @classmethod
    def btyd_score(
        cls,
        horizon: float,
        time_unit: str,
        window: dict[str, Any],
        btyd: PurchaseModel | None,
        decision: str,
    ) -> ChurnTable:
        """A window that ends before LightGBM: the raw BG/NBD score, and why."""
        early = ChurnModel(
            horizon,
            time_unit,
            btyd,
            "btyd",
            0.0,
            {"a": 1.0, "b": 0.0},
            window=window,
            validation={"decision": decision},
        )
        return cls(horizon, time_unit, window, btyd, early=early)


def churn_table(
    transactions: pd.DataFrame | Compact,
    feature_cutoff: pd.Timestamp,
    label_end: pd.Timestamp,
    time_unit: str,
    attributes: pd.DataFrame | None = None,
    seed: int = 42,
    surveys: pd.DataFrame | None = None,
    max_customers: int | None = None,
    stop: threading.Event | None = None,
) -> ChurnTable:
    """The first half of :func:`train_churn_model`: the window's features (with its BG/NBD),
    labels and training sample, for :func:`fit_churn_table`. The halves can run on different
    threads (:mod:`clv.training` builds the shipped window's table on the main line while the
    worker trains another window's classifier)."""
    cut, end = pd.Timestamp(feature_cutoff), pd.Timestamp(label_end)
    horizon = units.in_units((end - cut).days, time_unit)
    # every customer's RFM (the window's BG/NBD) and label (the sample), then the features of
    # the training sample only: at 5.5M customers the features of everyone were a gigabyte
    log = compact(transactions)
    rfm = build_rfm(log, cut, time_unit)
    check(stop)
    window = {
        "feature_cutoff": str(cut.date()),
        "label_end": str(end.date()),
        "customers": len(rfm),
    }
    if len(rfm) < MIN_CUSTOMERS or not (rfm["frequency"] > 0).any():
        decision = "too few customers in the window: BG/NBD score"
        return ChurnTable.btyd_score(horizon, time_unit, window, None, decision)
    btyd, _ = churn_feature_model(rfm, time_unit)
    labels = churn_labels(log, rfm[CUSTOMER], cut, end)
    check(stop)
    window["churn_rate"] = float(labels.mean())
    sample = log
    if max_customers is not None and len(rfm) > max_customers:
        from sklearn.model_selection import train_test_split

        keep, _ = train_test_split(
            np.arange(len(rfm)), train_size=max_customers, stratify=labels, random_state=seed
        )
        keep.sort()
        labels = labels[keep]
        sample = log.of_customers(rfm[CUSTOMER].iloc[keep])
        window["training_customers"] = len(keep)
    del rfm
    frame = with_model_features(
        behaviour_features(sample, cut, time_unit), cut, btyd, horizon, attributes, surveys
    )
    if min(labels.sum(), len(labels) - labels.sum()) < 5:
        decision = "too few customers or churners: BG/NBD score"
        return ChurnTable.btyd_score(horizon, time_unit, window, btyd, decision)
    attribute_columns = (
        [c for c in attributes.columns if c != CUSTOMER] if attributes is not None else []
    ) + (SURVEY_FEATURES if surveys is not None else [])
    return ChurnTable(horizon, time_unit, window, btyd, frame, labels, attribute_columns)


def fit_churn_table(
    table: ChurnTable,
    seed: int = 42,
    settings: ChurnConfig | None = None,
    stop: threading.Event | None = None,
) -> ChurnModel:
    """The second half of :func:`train_churn_model`: LightGBM's cross-validation, the blend
    and calibration choice and the final booster, on a :class:`ChurnTable`."""
    if table.early is not None:
        return table.early
    settings = settings if settings is not None else ChurnConfig()
    frame, labels = table.frame, table.labels

    import lightgbm as lgb
    from sklearn.model_selection import StratifiedKFold

    columns = _feature_columns(frame)
    categories = {
        c: sorted(frame[c].dropna().astype("str").unique().tolist())
        for c in columns
        if not pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    }
    X = _design(frame, columns, categories)
    params = _lgb_params(columns, seed, settings, len(X))
    folds = list(StratifiedKFold(settings.folds, shuffle=True, random_state=seed).split(X, labels))
    data = lgb.Dataset(
        X, labels, categorical_feature=list(categories) or "auto", free_raw_data=False
    )
    cv = lgb.cv(
        params,
        data,
        num_boost_round=settings.max_rounds,
        folds=folds,
        metrics="auc",
        callbacks=[
            stop_callback(stop),
            lgb.early_stopping(settings.early_stopping, verbose=False),
        ],
        return_cvbooster=True,
    )
    rounds = len(cv["valid auc-mean"])
    oof = np.zeros(len(X))
    for booster, (_, valid) in zip(cv["cvbooster"].boosters, folds, strict=True):
        oof[valid] = booster.predict(X.iloc[valid], num_iteration=rounds)
    btyd_score = frame["p_no_purchase"].to_numpy(dtype=float)
    aucs, gains = _compare_on_validation(labels, oof, btyd_score, settings.blend_weights)
    eligible = [w for w in settings.blend_weights if w == 0.0 or gains[w]["z"] > settings.min_z]
    top = max(round(aucs[w], 6) for w in eligible)
    best = min((w for w in eligible if round(aucs[w], 6) == top), key=_simplicity)
    choice = "lightgbm" if best == 1.0 else "btyd" if best == 0.0 else "blend"
    final = lgb.train(params, data, num_boost_round=rounds, callbacks=[stop_callback(stop)])
    check(stop)
    platt, calibration = _choose_calibration(
        best * oof + (1 - best) * btyd_score, btyd_score, labels, folds, settings.min_z
    )
    validation = {
        "decision": _decision_text(choice, best, aucs, gains, settings.min_z),
        "calibration": calibration,
        "oof_auc": {f"lightgbm_weight_{w:g}": float(a) for w, a in aucs.items()},
        "oof_gain_over_btyd": {f"lightgbm_weight_{w:g}": g for w, g in gains.items() if w > 0},
        "rounds": rounds,
    }
    importance = dict(zip(columns, final.feature_importance("gain").tolist(), strict=True))
    validation["feature_importance_gain"] = importance
    return ChurnModel(
        table.horizon,
        table.time_unit,
        table.btyd,
        choice,
        float(best),
        platt,
        columns,
        categories,
        table.attribute_columns,
        final.model_to_string(),
        validation,
        table.window,
    )


def train_churn_model(
    transactions: pd.DataFrame | Compact,
    feature_cutoff: pd.Timestamp,
    label_end: pd.Timestamp,
    time_unit: str,
    attributes: pd.DataFrame | None = None,
    seed: int = 42,
    surveys: pd.DataFrame | None = None,
    max_customers: int | None = None,
    settings: ChurnConfig | None = None,
    stop: threading.Event | None = None,
) -> ChurnModel:
    """Train a churn score on one leak-free window (features ≤ cutoff, labels in (cutoff, end]):
    :func:`churn_table`, then :func:`fit_churn_table`.

    ``settings`` are LightGBM's, the folds and the blend rule (``churn`` in the config; its
    defaults when omitted). ``stop``, when set, ends the training between its steps and at the
    next boosting round (:class:`clv.background.StoppedError`; a job on a worker thread).

    The returned model's ``btyd`` is the BG/NBD fitted up to ``feature_cutoff``; to score later
    customers, replace it with one fitted on data up to the scoring day
    (:func:`dataclasses.replace`).

    ``max_customers`` caps the customers LightGBM is cross-validated and trained on: above it, a
    seeded sample stratified by the label (the BG/NBD fit, and so its features, still use every
    customer). At 200,000 customers the AUC's standard error is already ~0.001, while
    five-fold boosting on millions of rows would dominate the run and its memory.

    Returns
    -------
    ChurnModel
        With ``choice = "btyd"`` and the raw BG/NBD score when the window has fewer than
        ``MIN_CUSTOMERS`` customers or fewer than 5 of either class.
    """
    table = churn_table(
        transactions,
        feature_cutoff,
        label_end,
        time_unit,
        attributes,
        seed,
        surveys,
        max_customers,
        stop,
    )
    return fit_churn_table(table, seed, settings, stop)


def window_table(
    transactions: pd.DataFrame | Compact,
    end: pd.Timestamp,
    horizon_days: int,
    time_unit: str,
    seed: int,
    max_customers: int | None,
    attributes: pd.DataFrame | None = None,
    surveys: pd.DataFrame | None = None,
    stop: threading.Event | None = None,
) -> ChurnTable:
    """The :class:`ChurnTable` of the latest leak-free window that ends at ``end``: features up
    to ``end − H`` (or later, when the log is too short: :func:`leak_free_window`, whose note it
    carries), labels in the window after."""
    start, note = leak_free_window(transactions, end, horizon_days, time_unit)
    table = churn_table(
        transactions, start, end, time_unit, attributes, seed, surveys, max_customers, stop
    )
    table.note = note
    return table


def train_churn_window(
    transactions: pd.DataFrame | Compact,
    end: pd.Timestamp,
    horizon_days: int,
    time_unit: str,
    seed: int,
    max_customers: int | None,
    settings: ChurnConfig,
    attributes: pd.DataFrame | None = None,
    surveys: pd.DataFrame | None = None,
    stop: threading.Event | None = None,
) -> tuple[ChurnModel, str | None]:
    """Train the churn model on the latest leak-free window that ends at ``end``
    (:func:`window_table`, then :func:`fit_churn_table`). The one way every step (evaluation,
    shipping, promotion) trains it (``stop``: :func:`train_churn_model`).

    Returns
    -------
    tuple
        The model, and the window's note (None when the whole horizon fits).
    """
    table = window_table(
        transactions, end, horizon_days, time_unit, seed, max_customers, attributes, surveys, stop
    )
    return fit_churn_table(table, seed, settings, stop), table.note


def _delong_components(labels: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's placement values: per positive, the share of negatives it outranks; per negative,
    the share of positives that outrank it (ties count one half)."""
    from scipy.stats import rankdata

    pos, neg = score[labels == 1], score[labels == 0]
    all_ranks = rankdata(np.r_[pos, neg])
    m, n = len(pos), len(neg)
    v10 = (all_ranks[:m] - rankdata(pos)) / n
    v01 = 1.0 - (all_ranks[m:] - rankdata(neg)) / m
    return v10, v01


def paired_auc_test(
    labels: np.ndarray, challenger: np.ndarray, baseline: np.ndarray
) -> dict[str, float]:
    """ROC AUC of two scores on the same customers and DeLong's z for their difference
    (positive when ``challenger`` ranks better)."""
    c = _delong_components(labels, challenger)
    b = _delong_components(labels, baseline)
    gain, se = _delong_gain(c, b)
    return {
        "challenger_auc": float(c[0].mean()),
        "baseline_auc": float(b[0].mean()),
        "z": gain / se if se > 0 else 0.0,
    }


def _delong_gain(
    challenger: tuple[np.ndarray, np.ndarray], baseline: tuple[np.ndarray, np.ndarray]
) -> tuple[float, float]:
    """AUC gain of one score over another on the same customers, and its DeLong standard
    error, from their placement values (:func:`_delong_components`)."""
    d10, d01 = challenger[0] - baseline[0], challenger[1] - baseline[1]
    se = float(np.sqrt(d10.var(ddof=1) / len(d10) + d01.var(ddof=1) / len(d01)))
    return float(challenger[0].mean()) - float(baseline[0].mean()), se


def _compare_on_validation(
    labels: np.ndarray, oof: np.ndarray, btyd: np.ndarray, weights: list[float]
) -> tuple[dict[float, float], dict[float, dict[str, float]]]:
    """ROC AUC of each blend, and its gain over the BG/NBD score with DeLong's standard error.

    DeLong, DeLong & Clarke-Pearson (1988): the variance of a difference of two correlated AUCs
    on the same customers, from the placement values of each score.
    """
    base = _delong_components(labels, btyd)
    aucs, gains = {0.0: float(base[0].mean())}, {}
    for w in (w for w in weights if w > 0):
        blend = _delong_components(labels, w * oof + (1 - w) * btyd)
        aucs[w] = float(blend[0].mean())
        gain, se = _delong_gain(blend, base)
        gains[w] = {"gain": gain, "se": se, "z": gain / se if se > 0 else 0.0}
    return aucs, gains


def _decision_text(
    choice: str,
    best: float,
    aucs: dict[float, float],
    gains: dict[float, dict[str, float]],
    min_z: float,
) -> str:
    strongest = max(gains, key=lambda w: gains[w]["z"])
    g = gains[strongest]
    return (
        f"{choice} (LightGBM weight {best:g}, out-of-fold AUC {aucs[best]:.4f}); strongest "
        f"challenger weight {strongest:g}: AUC gain {g['gain']:+.4f} over BG/NBD, z = {g['z']:.2f} "
        f"(ships only above {min_z:g})"
    )


def _simplicity(weight: float) -> int:
    """Order of preference on a tie: the BG/NBD score, then LightGBM alone, then blends."""
    return 0 if weight == 0.0 else 1 if weight == 1.0 else 2
