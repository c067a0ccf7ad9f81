"""The churn comparison: the classifier trained on the window before the cutoff against each
purchase model's P(no purchase), on the holdout's labels."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from clv import metrics, units
from clv.config import Config
from clv.data.compact import CUSTOMER
from clv.data.log import TransactionLog
from clv.evaluation.candidates import Candidates
from clv.evaluation.result import ChurnResult
from clv.evaluation.scores import churn_metrics, label
from clv.evaluation.split import CalibrationTable, Split, churn_horizon
from clv.models.ensemble import EnsembleModel
from clv.models.fitted import PurchaseModel
from clv.models.fitting import churn_feature_model
from clv.models.groups import SCORE_ROWS, per_customer
from clv.models.registry import CHURN_FEATURE_MODELS
from clv.stages import StageLog

if TYPE_CHECKING:
    from clv.churn import ChurnTable


def churn_window(
    log: TransactionLog,
    config: Config,
    end: pd.Timestamp,
    horizon: float,
    attributes: pd.DataFrame | None = None,
    surveys: pd.DataFrame | None = None,
    stop: threading.Event | None = None,
) -> ChurnResult:
    """The config's churn classifier trained on the leak-free window that ends at ``end``
    (:func:`clv.churn.train_churn_window`; ``horizon`` in the time unit): the one the scorecard
    judges ends at the calibration cutoff, blind to the holdout; the one that ships
    (:mod:`clv.training`) at the log's end. :func:`churn_window_table` and
    :func:`fit_churn_window` are its two halves."""
    return fit_churn_window(
        churn_window_table(log, config, end, horizon, attributes, surveys, stop), config, stop
    )


def churn_window_table(
    log: TransactionLog,
    config: Config,
    end: pd.Timestamp,
    horizon: float,
    attributes: pd.DataFrame | None = None,
    surveys: pd.DataFrame | None = None,
    stop: threading.Event | None = None,
) -> ChurnTable:
    """The training table of :func:`churn_window` (:func:`clv.churn.window_table`)."""
    from clv.churn import window_table

    unit = config.features.time_unit
    return window_table(
        log.compact,
        end,
        units.whole_days(horizon, unit),
        unit,
        config.train.seed,
        config.train.churn_max_customers,
        attributes,
        surveys,
        stop,
    )


def fit_churn_window(
    table: ChurnTable, config: Config, stop: threading.Event | None = None
) -> ChurnResult:
    """The classifier of :func:`churn_window` from its training table, with the window's note
    (:func:`clv.churn.fit_churn_table`)."""
    from clv.churn import fit_churn_table

    return fit_churn_table(table, config.train.seed, config.churn, stop), table.note


def evaluate_churn(
    log: TransactionLog,
    config: Config,
    split: Split,
    cal: pd.DataFrame,
    models: dict[str, PurchaseModel],
    card: dict[str, Any],
    trained: Callable[[], ChurnResult],
    attributes: pd.DataFrame | None,
    surveys: pd.DataFrame | None,
) -> tuple[Any, pd.DataFrame | None]:
    """The scorecard's churn section. ``trained()`` gives the classifier (waiting for the worker
    that trains it). The features are built, and every score taken, for blocks of about
    :data:`clv.models.groups.SCORE_ROWS` customers (:func:`clv.churn.scores_by_block`): the
    scores of every customer are held, not their features (a gigabyte at 5.5M customers)."""
    from clv.churn import churn_labels, scores_by_block

    unit = config.features.time_unit
    H = churn_horizon(config, split)
    days = units.whole_days(H, unit)
    c = split.calibration_end
    label_end = min(c + pd.Timedelta(days=days), split.observation_end)
    if split.duration + 1e-9 < H:
        card["churn_note"] = (
            f"churn horizon {H:g} {unit}s is longer than the holdout ({split.duration:g} "
            f"{unit}s): evaluation labels cover ({c.date()}, {label_end.date()}] only"
        )
    bgnbd = models.get(CHURN_FEATURE_MODELS[0]) or churn_feature_model(cal, unit)[0]
    model, note = trained()
    if note:
        card["churn_note"] = "; ".join(filter(None, [card.get("churn_note"), note]))
    model = replace(model, btyd=bgnbd)
    baseline = f"{bgnbd.kind}_p_no_purchase"  # BG/NBD's, or its stand-in's when it failed
    candidates = {bgnbd.kind: bgnbd, **models}
    customers, scores = scores_by_block(
        log.compact,
        c,
        unit,
        bgnbd,
        H,
        lambda frame: (
            _churn_scores(frame, model, candidates, H)
            | {"p_no_purchase": frame["p_no_purchase"].to_numpy()}
        ),
        SCORE_ROWS,
        attributes,
        surveys,
    )
    feature = scores.pop("p_no_purchase")  # the classifier's BG/NBD feature, kept, not scored
    labels = churn_labels(log.compact, customers, c, label_end)
    card["churn"] = {k: churn_metrics(labels, s) for k, s in scores.items()}
    card["churn_protocol"] = {
        "horizon": H,
        "training_window": model.window,
        "evaluation_window": {
            "feature_cutoff": str(c.date()),
            "label_end": str(label_end.date()),
            "churn_rate": float(labels.mean()),
        },
        "decision": model.validation.get("decision"),
        "baseline": baseline,
    }
    card["churn_reliability"] = metrics.reliability_curve(labels, scores["churn_model"]).to_dict(
        "records"
    )
    # what the figures and a promotion read (a promotion builds the features again for the
    # champion's classifier: clv.promotion)
    kept = pd.DataFrame(
        {
            CUSTOMER: customers,
            "churned": labels,
            "churn_probability": scores["churn_model"],
            "p_no_purchase": feature,
        }
    )
    return model, kept


def _churn_scores(
    frame: pd.DataFrame, model: Any, candidates: dict[str, Any], H: float
) -> dict[str, np.ndarray]:
    """The scorecard's churn scores of a block of customers' features: the classifier's
    (``churn_model``, and ``lightgbm`` alone when it has a booster) and every candidate's
    P(no purchase) over ``H`` (an ensemble's as the mean of its members' already computed)."""
    x, t_x, T = (frame[k].to_numpy(dtype=float) for k in ("frequency", "recency", "T"))
    scores = {"churn_model": model.predict_proba(frame)}
    if model.booster_text is not None:
        scores["lightgbm"] = replace(model, blend_weight=1.0).raw_score(frame)
    no_purchase: dict[str, np.ndarray] = {}
    for kind, m in candidates.items():
        reused = m.mean_of(candidates, no_purchase) if isinstance(m, EnsembleModel) else None
        no_purchase[kind] = (
            reused
            if reused is not None
            else per_customer(
                m, frame, lambda plain, rows: plain.p_no_purchase(H, x[rows], t_x[rows], T[rows])
            )
        )
    return scores | {f"{kind}_p_no_purchase": p for kind, p in no_purchase.items()}


def churn_stage(
    log: TransactionLog,
    config: Config,
    split: Split,
    table: CalibrationTable,
    fits: Candidates,
    card: dict[str, Any],
    churn: Future[ChurnResult],
    inputs: tuple[pd.DataFrame | None, pd.DataFrame | None],
    report: StageLog,
    while_waiting: Callable[[], object] | None = None,
) -> tuple[Any | None, pd.DataFrame | None]:
    """The churn comparison (the optional stage ``churn_evaluation``): the classifier of the
    window before the cutoff, once ``churn`` is done, against each candidate's P(no purchase);
    ``inputs`` are the customer attributes and surveys. Returns the classifier and the
    evaluation window's frame (None, None when skipped)."""
    if while_waiting is not None and not churn.done():
        while_waiting()
    attributes, surveys = inputs
    churn_model, churn_frame = report.optional(
        "churn_evaluation",
        lambda: evaluate_churn(
            log, config, split, table.frame, fits.models, card, churn.result, attributes, surveys
        ),
        "the scorecard has no churn comparison",
        (None, None),
    )
    if churn_model is not None:
        baseline = card["churn_protocol"]["baseline"]
        report(
            f"Trained and scored the churn model: holdout ROC AUC "
            f"{card['churn']['churn_model']['roc_auc']:.4f} "
            f"({label(baseline).removesuffix(' P(no purchase)')} baseline "
            f"{card['churn'][baseline]['roc_auc']:.4f})"
        )
    return churn_model, churn_frame
