"""Training a churn classifier on a window: its table (features, labels, a stratified sample),
five-fold out-of-fold predictions, the choice among LightGBM, blends and the BTYD score by
DeLong's test, and the calibration."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from clv import units
from clv.background import check, stop_callback
from clv.churn.calibration import choose_calibration
from clv.churn.delong import delong_components, delong_gain
from clv.churn.features import (
    MIN_CUSTOMERS,
    SURVEY_FEATURES,
    behaviour_features,
    churn_labels,
    leak_free_window,
    with_model_features,
)
from clv.churn.model import ChurnModel, design, feature_columns, lgb_params
from clv.config import ChurnConfig
from clv.data.compact import CUSTOMER, Compact, compact
from clv.features import build_rfm
from clv.models.fitted import PurchaseModel
from clv.models.fitting import churn_feature_model


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

    columns = feature_columns(frame)
    categories = {
        c: sorted(frame[c].dropna().astype("str").unique().tolist())
        for c in columns
        if not pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    }
    X = design(frame, columns, categories)
    params = lgb_params(columns, seed, settings, len(X))
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
    platt, calibration = choose_calibration(
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


def _compare_on_validation(
    labels: np.ndarray, oof: np.ndarray, btyd: np.ndarray, weights: list[float]
) -> tuple[dict[float, float], dict[float, dict[str, float]]]:
    """ROC AUC of each blend, and its gain over the BG/NBD score with DeLong's standard error.

    DeLong, DeLong & Clarke-Pearson (1988): the variance of a difference of two correlated AUCs
    on the same customers, from the placement values of each score.
    """
    base = delong_components(labels, btyd)
    aucs, gains = {0.0: float(base[0].mean())}, {}
    for w in (w for w in weights if w > 0):
        blend = delong_components(labels, w * oof + (1 - w) * btyd)
        aucs[w] = float(blend[0].mean())
        gain, se = delong_gain(blend, base)
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
