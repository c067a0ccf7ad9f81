"""The training run's stages, wired in order (the package docstring tells the story)."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

from clv import resources
from clv.background import Handoff, background
from clv.bundle import Bundle
from clv.config import Config
from clv.data.clean import RunInputs, load_run_inputs
from clv.data.log import TransactionLog
from clv.evaluation import (
    Evaluation,
    evaluate,
    label,
)
from clv.predict import define_segments
from clv.stages import StageLog
from clv.training.guard import run_guard
from clv.training.kpi_report import kpi_stage
from clv.training.latest_churn import build_as_job, churn_stage, start_churn_jobs
from clv.training.refit import Refit, refit_stage
from clv.training.result import TrainResult
from clv.training.ship import draw_figures, ship


def train(
    config: Config,
    progress: Callable[[int, int], None] | None = None,
    inputs: RunInputs | None = None,
    stages: StageLog | None = None,
) -> TrainResult:
    """Run the training job described in the module docstring.

    Parameters
    ----------
    config : Config
        Data source and mapping, time unit, split, candidates, churn horizon, output folder,
        MLflow settings.
    progress : callable, optional
        ``progress(rows_done, rows_total)`` while a large Parquet log is read in chunks.
    inputs : RunInputs, optional
        The log, attributes and surveys, when the caller has read them already.
    stages : StageLog, optional
        Receives a line as each stage ends (reading, each candidate's fit and holdout score,
        spend, churn, refit, bundle, KPIs, MLflow logging).

    Returns
    -------
    TrainResult
        The bundle, where it was written, the evaluation, and the MLflow run id and registry
        decision when tracking is enabled.

    Raises
    ------
    clv.locks.LockedError
        If another run is writing ``train.model_dir``.
    clv.tracking.TrackingStoreError
        If the tracking store does not answer before the work starts, or fails during logging
        (the bundle is then kept at ``<model_dir>-unlogged``).
    ModelFitError
        If no candidate purchase model converges.
    """
    with (
        run_guard(config),
        resources.limits(config.resources.threads),
        tempfile.TemporaryDirectory(prefix="clv-plots-") as drawn,
    ):
        stages = stages if stages is not None else StageLog()
        return _train(config, progress, inputs, stages, Path(drawn))


def _train(
    config: Config,
    progress: Callable[[int, int], None] | None,
    inputs: RunInputs | None,
    stages: StageLog,
    drawn: Path,
) -> TrainResult:
    """The run (package docstring); ``drawn``, an empty folder, receives the evaluation's
    figures while the worker finishes the shipped classifier (logged from there with MLflow)."""
    if inputs is None:
        inputs = load_run_inputs(config, progress)
        stages(f"Read {inputs.log.report.transactions:,} transactions")
    log, attributes, surveys = inputs.log, inputs.attributes, inputs.surveys
    notices: list[str] = [log.report.implausible_note()] if log.report.implausible_note() else []
    with warnings.catch_warnings(record=True) as caught, background() as jobs:
        warnings.simplefilter("always")
        churns = start_churn_jobs(jobs, log, config, attributes, surveys)
        # the log's fingerprint (7 s at 100M rows) in the worker's idle tail on logs where the
        # main line is the longer chain; where the worker is, the main line takes it over
        fingerprint = Handoff(log.fingerprint)
        jobs.submit(fingerprint.build_if_free)
        evaluation = evaluate(
            log,
            config,
            attributes,
            surveys,
            stages,
            churns.scorecard,
            partial(build_as_job, churns.latest_table),
        )
        for kind, message in evaluation.scorecard.get("dropped", {}).items():
            notices.append(f"{label(kind)} dropped: {message}")
        refit = refit_stage(evaluation, log, config, attributes, notices, stages)
        # what needs no churn classifier is done while the worker finishes it: the KPI report,
        # the value tiers, the log's fingerprint (unless the worker has begun it), MLflow's
        # set-up and the evaluation's figures
        forecasting = Bundle(refit.purchase, refit.spend, config.to_dict(), fingerprint={})
        kpis = kpi_stage(log, config, forecasting, surveys, refit.rfm, stages)
        s = config.score
        segments = define_segments(
            forecasting,
            refit.full,
            s.segments,
            s.segment_rest,
            s.horizon,
            s.time_unit,
            s.discount_rate,
        )
        digest = fingerprint.get()
        drawing = draw_figures(config, evaluation, log, drawn, stages)
        churn = churn_stage(churns, config, refit.purchase, refit.full, notices, stages)
    notices = _run_notices(notices, caught, drawing, log, refit, stages)
    if stages.skipped:  # the evaluation's skipped stages and the refit's
        evaluation.scorecard["skipped"] = dict(stages.skipped)
    bundle = Bundle(
        purchase=refit.purchase,
        spend=refit.spend,
        config=config.to_dict(),
        fingerprint=digest,
        cleaning=log.report.to_dict(),
        selection=_selection(evaluation, refit.chosen),
        notices=notices,
        churn=churn,
        scorecard=evaluation.scorecard,
        segments=segments,
    )
    return ship(bundle, evaluation, log, kpis, config, stages, drawn)


def _run_notices(
    notices: list[str],
    caught: list[warnings.WarningMessage],
    drawing: list[warnings.WarningMessage],
    log: TransactionLog,
    refit: Refit,
    stages: StageLog,
) -> list[str]:
    """The run's notices, each once: its own, the warnings of its stages and the stages
    skipped; the figures' warnings are shown, not kept."""
    for item in caught:
        if issubclass(item.category, UserWarning):
            notices.append(str(item.message))
    for item in drawing:
        warnings.showwarning(item.message, item.category, item.filename, item.lineno)
    if not log.has_amounts:
        notices.append("The log has no amount column: purchase models only, no value columns.")
    elif refit.spend is None:
        notices.append("No spend model: this bundle scores purchases and churn, not value.")
    return list(dict.fromkeys(notices + stages.notices()))


def _selection(evaluation: Evaluation, chosen: str) -> dict[str, object]:
    """The bundle's ``model_selection``: the choice, by what, and every candidate's scores."""
    card = evaluation.scorecard
    return {
        "chosen": chosen,
        "criterion": f"holdout {evaluation.selection_metric} of purchases",
        "scores": {k: card["purchases"][k] for k in card["purchases"]},
        "calibration_params": {k: m.params for k, m in evaluation.purchase_models.items()},
        "dropped": card.get("dropped", {}),
        **card["protocol"],
    }
