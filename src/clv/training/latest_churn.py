"""The shipped churn classifier: trained on the latest leak-free window on the worker, its
table handed to whichever line gets to it first, its features from a whole-log fit."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future
from dataclasses import dataclass, replace

import pandas as pd

from clv import resources
from clv.background import Background, Handoff
from clv.churn import ChurnModel, without_classifier
from clv.config import Config
from clv.data.log import TransactionLog
from clv.evaluation import (
    ChurnResult,
    choose_split,
    churn_horizon,
    churn_window,
    churn_window_table,
    fit_churn_window,
    observation_end,
)
from clv.models.fitted import PurchaseModel
from clv.models.fitting import fit_first
from clv.models.registry import CHURN_FEATURE_MODELS, display_name
from clv.stages import StageLog


def ship_churn(
    trained: ChurnResult,
    config: Config,
    purchase: PurchaseModel,
    full: pd.DataFrame,
    notices: list[str],
) -> ChurnModel:
    """The latest window's classifier as shipped: its window's note as a notice, and its
    BTYD features from a fit on the whole log (``purchase`` when it is that model)."""
    unit = config.features.time_unit
    model, note = trained
    if note:
        notices.append(f"Churn model: {note}; churn_probability is for that horizon.")
    # the classifier trained on the latest window (evaluation.churn_window at the log's end);
    # the scoring features come from a whole-log fit of the model it learned on
    kind = model.btyd.kind if model.btyd is not None else CHURN_FEATURE_MODELS[0]
    if purchase.kind == kind:
        return replace(model, btyd=purchase)
    others = tuple(k for k in CHURN_FEATURE_MODELS if k != kind)
    btyd, failures = fit_first((kind, *others), full, unit)
    if failures:
        notices.append(
            f"Churn model: {display_name(kind)} did not converge on the whole log; its features "
            f"come from {btyd.name} when scoring."
        )
    return replace(model, btyd=btyd)


def fit_handed(table: Handoff, config: Config, stop: threading.Event) -> ChurnResult:
    """The shipped churn classifier from its handed-over training table (a worker's job)."""
    return fit_churn_window(table.get(), config, stop)


def build_as_job(table: Handoff) -> None:
    """Build the handed-over table on the main line with a job's threads
    (:func:`clv.resources.as_worker`): the same table whoever builds it. A build that fails is
    reported where the table is used (the shipped churn classifier, an optional stage), not
    here: the Handoff keeps its exception for that."""
    with resources.as_worker(), contextlib.suppress(Exception):
        table.build_if_free()


@dataclass
class ChurnJobs:
    """The run's two churn trainings, queued on the worker in turn: the scorecard's (the window
    before the calibration cutoff) and the shipped one (the latest window, whose table either
    line may build)."""

    horizon: float
    scorecard: Future[ChurnResult]
    latest_table: Handoff
    latest: Future[ChurnResult]


def start_churn_jobs(
    jobs: Background,
    log: TransactionLog,
    config: Config,
    attributes: pd.DataFrame | None,
    surveys: pd.DataFrame | None,
) -> ChurnJobs:
    """Queue both churn trainings on the worker (:mod:`clv.background`): LightGBM uses the core
    that the purchase fits, the metrics and the refits leave idle. The shipped window's training
    table is built by whichever line gets to it first: the main line when it would otherwise
    wait for the scorecard's classifier (the worker's chain is the longer one on logs of about
    a million customers), the worker when it is ahead."""
    split = choose_split(log, config)
    H = churn_horizon(config, split)
    scorecard = jobs.submit(
        churn_window, log, config, split.calibration_end, H, attributes, surveys, jobs.stop
    )
    end = observation_end(log, config)
    table = Handoff(lambda: churn_window_table(log, config, end, H, attributes, surveys, jobs.stop))
    return ChurnJobs(H, scorecard, table, jobs.submit(fit_handed, table, config, jobs.stop))


def churn_stage(
    churns: ChurnJobs,
    config: Config,
    purchase: PurchaseModel,
    full: pd.DataFrame,
    notices: list[str],
    stages: StageLog,
) -> ChurnModel:
    """The shipped churn model (the optional stage ``churn_classifier``): the latest window's
    classifier, or the purchase model's P(no purchase) within the horizon when it cannot be
    trained."""
    unit, H = config.features.time_unit, churns.horizon
    churn = stages.optional(
        "churn_classifier",
        lambda: ship_churn(churns.latest.result(), config, purchase, full, notices),
        f"churn_probability is {purchase.name}'s P(no purchase) within {H:g} {unit}s",
    )
    if churn is None:
        return without_classifier(H, unit, stages.skipped["churn_classifier"]["reason"])
    stages(f"Retrained the churn model on the latest window ({churn.choice})")
    return churn
