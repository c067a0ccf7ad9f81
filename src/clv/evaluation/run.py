"""The evaluation's stages, wired in order: split, candidate fits, covariate fits, the choice
and stacking, the scorecard, Gamma-Gamma, interval calibration and the churn comparison."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future

import numpy as np
import pandas as pd

from clv import metrics
from clv.background import background
from clv.config import Config
from clv.data.log import TransactionLog
from clv.errors import DataValidationError
from clv.evaluation.candidates import fit_candidates
from clv.evaluation.choice import choose, selection_section
from clv.evaluation.churn_scores import churn_stage, churn_window
from clv.evaluation.covariate_fits import fit_covariate_candidates
from clv.evaluation.coverage import coverage_stage
from clv.evaluation.result import ChurnResult, Evaluation
from clv.evaluation.scores import purchase_section
from clv.evaluation.split import (
    Split,
    calibration_table,
    choose_split,
    churn_horizon,
    describe_regularity,
)
from clv.evaluation.value import value_stage
from clv.stages import StageLog


def evaluate(
    log: TransactionLog,
    config: Config,
    attributes: pd.DataFrame | None = None,
    surveys: pd.DataFrame | None = None,
    stages: StageLog | None = None,
    churn: Future[ChurnResult] | None = None,
    while_waiting: Callable[[], object] | None = None,
) -> Evaluation:
    """Fit every model on the calibration period and score the holdout (module docstring).

    Parameters
    ----------
    log : TransactionLog
        The cleaned log.
    config : Config
        Split, candidates, time unit, churn horizon, seeds.
    attributes : pandas.DataFrame, optional
        Customer attributes for the churn classifier (``customer_id`` + columns).
    surveys : pandas.DataFrame, optional
        Survey answers; their features join the churn classifier
        (:func:`clv.churn.survey_features`).
    stages : StageLog, optional
        Receives a line as each model is fitted and scored on the holdout, and runs the
        optional stages (Gamma-Gamma, interval calibration, the churn comparison: they degrade
        when they fail, :mod:`clv.stages`).
    churn : concurrent.futures.Future, optional
        The churn classifier of the window before the cutoff (:func:`churn_window` at the
        calibration cutoff), when the caller started it already; otherwise it is trained on a
        worker thread (:mod:`clv.background`) while the purchase models are fitted.
    while_waiting : callable, optional
        Called once, if that classifier is not ready when the scorecard needs it: work the
        caller gives the main line instead of waiting (:class:`clv.background.Handoff`).

    Returns
    -------
    Evaluation
    """
    if config.covariates.used and attributes is None:
        raise DataValidationError(
            f"covariates names customer attributes ({config.covariates.attributes}): give the "
            "customer list with --customers (train.customers)."
        )
    split = choose_split(log, config)
    if churn is not None:
        return _evaluate(log, config, split, attributes, surveys, stages, churn, while_waiting)
    with background() as jobs:
        cutoff, horizon = split.calibration_end, churn_horizon(config, split)
        churn = jobs.submit(
            churn_window, log, config, cutoff, horizon, attributes, surveys, jobs.stop
        )
        return _evaluate(log, config, split, attributes, surveys, stages, churn)


def _evaluate(
    log: TransactionLog,
    config: Config,
    split: Split,
    attributes: pd.DataFrame | None,
    surveys: pd.DataFrame | None,
    stages: StageLog | None,
    churn: Future[ChurnResult],
    while_waiting: Callable[[], object] | None = None,
) -> Evaluation:
    """The evaluation's stages in order; each adds its part of the scorecard."""
    report = stages if stages is not None else StageLog()
    table = calibration_table(log, config, split, attributes)
    report(
        f"Split at {split.calibration_end.date()}: {len(table.frame):,} customers, holdout "
        f"{split.duration:g} {config.features.time_unit}s"
    )
    report(describe_regularity(table.timing, table.candidates, config.train.candidates))
    fits = fit_candidates(table, split, config, report)
    if config.covariates.on_purchase:
        fit_covariate_candidates(fits, table, split, config, report)
    fits.require_one()
    choice = choose(log, config, split, table, fits, report)
    ranked = metrics.Actual(table.actual)  # ranked once for every forecast
    card = purchase_section(split, table, fits.predictions, ranked, config)
    selection_section(card, choice, fits, ranked, config, report)
    card["regularity"] = {  # JSON has no NaN: unmeasured is null
        "k": table.timing["k"] if np.isfinite(table.timing["k"]) else None,
        "customers": table.timing["customers"],
    }
    spend = value_stage(log, split, table, fits, card, config, report)
    coverage_stage(split, table, fits, spend, card, config, report)
    churn_model, churn_frame = churn_stage(
        log, config, split, table, fits, card, churn, (attributes, surveys), report, while_waiting
    )
    if report.skipped:  # JSON of the stages skipped so far (training adds its own)
        card["skipped"] = dict(report.skipped)
    return Evaluation(
        split,
        table.frame,
        fits.models,
        spend,
        churn_model,
        card,
        fits.predictions,
        churn_frame,
        config.train.selection_metric,
        log,
    )
