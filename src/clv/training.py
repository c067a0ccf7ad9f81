"""Training: evaluate on a holdout, choose, refit on the whole log, ship a bundle.

1. Clean the log (:mod:`clv.data`); read customer attributes when ``train.customers`` is set.
2. Evaluate (:mod:`clv.evaluation`): split at the calibration cutoff, fit every candidate
   purchase model, Gamma-Gamma and a churn classifier on data up to the cutoff, and score the
   holdout against the baselines. The purchase model with the lowest holdout
   ``train.selection_metric`` (mean Poisson deviance by default) is chosen.
3. Refit the chosen purchase model and Gamma-Gamma on the whole log, and retrain the churn
   classifier on the latest leak-free window (features up to ``end − H``, labels from
   ``(end − H, end]``; :mod:`clv.churn`), with BG/NBD features from a fit on the whole log.
   Both churn trainings (step 2's and this one) start at once, in turn, on a worker thread
   (:mod:`clv.background`): their LightGBM runs on the core that the single-threaded steps
   leave idle (same models). What needs no classifier is done before waiting for one: the
   shipped window's training table (when the worker has not begun it) before the first, the
   KPI report, the value tiers, the log's fingerprint, MLflow's set-up and the evaluation's
   figures before the second. The fingerprint is queued on the worker after the trainings, and
   the main line computes it itself if the worker has not begun it
   (:class:`clv.background.Handoff`).
4. Write the bundle (:mod:`clv.bundle`). With MLflow enabled (:mod:`clv.tracking`) the bundle is
   staged beside ``train.model_dir``, logged and registered, then put in place as a whole: at
   ``train.model_dir`` when it became the champion (so that folder, which ``clv score`` uses by
   default, always holds the champion), else at ``<model_dir>-v<version>``. Without MLflow it
   replaces ``train.model_dir`` as a whole. If the tracking store fails mid-run, the bundle is
   kept at ``<model_dir>-unlogged`` and the error says so.

The whole run holds ``train.model_dir``'s lock (:mod:`clv.locks`): a second run writing the same
folder waits ``train.lock_wait`` seconds, then stops naming the first. With MLflow, the tracking
store is checked before any work (:func:`clv.tracking.check_store`).

A candidate purchase model that does not converge is dropped (:mod:`clv.evaluation`); when the
chosen model does not converge on the whole log, the next best candidate is shipped instead.
Both are notices of the run; the run fails only when no candidate converges.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import pandas as pd

from clv import resources
from clv.background import Handoff, background
from clv.bundle import Bundle, check_bundle_folder, place_bundle, save_bundle, write_bundle_files
from clv.churn import ChurnModel, without_classifier
from clv.config import Config
from clv.data.clean import RunInputs, load_run_inputs
from clv.data.customers import read_customer_list
from clv.data.log import TransactionLog
from clv.errors import ModelFitError
from clv.evaluation import (
    ChurnResult,
    Evaluation,
    choose_split,
    churn_horizon,
    churn_window,
    churn_window_table,
    evaluate,
    fit_churn_window,
    label,
    needs_log_gaps,
    observation_end,
    with_covariates,
)
from clv.features import add_log_gaps, build_rfm
from clv.kpis import KpiReport
from clv.locks import folder_lock
from clv.models.ensemble import EnsembleModel
from clv.models.fitted import PurchaseModel
from clv.models.fitting import fit_first, refit_mixture
from clv.models.gamma_gamma import SpendModel, fit_spend_model
from clv.models.registry import CHURN_FEATURE_MODELS, STACKED, display_name
from clv.models.spend_covariates import CovariateSpendModel, fit_configured
from clv.outputs import input_paths
from clv.predict import customer_features, define_segments, model_attributes, score_rfm
from clv.stages import StageLog
from clv.tables import leftover_name


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    bundle: Bundle
    path: Path
    evaluation: Evaluation
    log: TransactionLog
    notices: list[str] = field(default_factory=list)
    run_id: str | None = None
    registry: dict[str, object] = field(default_factory=dict)
    kpis: KpiReport | None = None
    stage_log: list[str] = field(default_factory=list)
    stages: StageLog | None = field(default=None, repr=False)


def _ship_churn(
    trained: ChurnResult,
    config: Config,
    purchase: PurchaseModel,
    full: pd.DataFrame,
    notices: list[str],
) -> ChurnModel:
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


def _fit_handed(table: Handoff, config: Config, stop: threading.Event) -> ChurnResult:
    """The shipped churn classifier from its handed-over training table (a worker's job)."""
    return fit_churn_window(table.get(), config, stop)


def _as_job(table: Handoff) -> None:
    """Build the handed-over table on the main line with a job's threads
    (:func:`clv.resources.as_worker`): the same table whoever builds it. A build that fails is
    reported where the table is used (the shipped churn classifier, an optional stage), not
    here: the Handoff keeps its exception for that."""
    with resources.as_worker(), contextlib.suppress(Exception):
        table.build_if_free()


def build_kpis(
    log: TransactionLog,
    config: Config,
    bundle: Bundle | None,
    surveys: pd.DataFrame | None,
    rfm: pd.DataFrame | None = None,
) -> KpiReport:
    """The KPI report (:mod:`clv.kpis`) with the cost and customer tables the config names
    (``rfm``: the log's RFM table as of :func:`observation_end`, when the caller has it)."""
    from clv.data.customers import load_costs
    from clv.kpis import build_report

    settings = config.kpis
    col = config.data.customer_col
    costs = load_costs(settings.costs, col, settings) if settings.costs else None
    customers = read_customer_list(settings.customers, col) if settings.customers else None
    attributes = model_attributes(bundle, config) if bundle is not None else None
    return build_report(
        log,
        config,
        observation_end(log, config),
        bundle,
        surveys,
        costs,
        customers,
        attributes,
        rfm,
    )


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


#: The model folders whose :func:`run_guard` this thread of work is inside.
_GUARDED: ContextVar[frozenset[str]] = ContextVar("clv_guarded", default=frozenset())


@contextmanager
def run_guard(config: Config, inputs: Iterable[Path] | None = None) -> Iterator[None]:
    """What a training run holds and checks before any work: that ``train.model_dir`` is a
    folder clv may replace (:func:`clv.bundle.check_bundle_folder`: new, empty or a bundle, and
    holding none of ``inputs``, by default the config's input files), the folder's lock (waiting
    ``train.lock_wait`` seconds for another run) and, with MLflow, the tracking store.
    Callers that read the log first (the CLI) enter it before reading; entered again inside
    (by :func:`train`), it neither locks nor checks again: the store is checked once, before
    the work, and a store that fails later is met when the run is logged (the bundle is kept).
    """
    settings = config.train
    key = str(Path(settings.model_dir).resolve())
    held = _GUARDED.get()
    if key in held:
        yield
        return
    check_bundle_folder(settings.model_dir, input_paths(config) if inputs is None else inputs)
    token = _GUARDED.set(held | {key})
    try:
        with folder_lock(settings.model_dir, settings.lock_wait, purpose="training"):
            if config.mlflow.enabled:
                from clv.mlflow_store import tracking_uri
                from clv.tracking import check_store

                check_store(tracking_uri(config.mlflow.tracking_uri))
            yield
    finally:
        _GUARDED.reset(token)


def _refit(
    evaluation: Evaluation, full: pd.DataFrame, config: Config, notices: list[str]
) -> PurchaseModel | EnsembleModel:
    """The chosen model refitted on the whole log; when it does not converge there, the next
    best candidate by the holdout criterion (a notice says so)."""
    ranked = evaluation.ranked_purchase_models
    settings = config.train
    model = None
    if ranked[0] == STACKED:
        try:
            model = _refit_stacked(evaluation, full, config, notices)
        except ModelFitError as exc:
            notices.append(
                f"No member of the stacked mixture converged on the whole log; shipped the "
                f"next best candidate instead. ({exc})"
            )
    if model is None:
        model, failures = fit_first(
            tuple(k for k in ranked if k != STACKED),
            full,
            config.features.time_unit,
            settings.penalizer,
            settings.retry_penalizer,
            config.covariates.model_dump(),
        )
        for kind, message in failures.items():
            notices.append(
                f"{display_name(kind)} was best on the holdout but did not converge on the "
                f"whole log; shipped {model.name}, the next best, instead. ({message})"
            )
    members = getattr(model, "members", (model,))
    notices += [n for m in members if (n := getattr(m, "limit_note", None))][:1]
    return model


def _refit_stacked(
    evaluation: Evaluation, full: pd.DataFrame, config: Config, notices: list[str]
) -> EnsembleModel:
    """The stacked mixture's members refitted on the whole log at the weights the holdouts
    chose (:mod:`clv.stacking`); a member that does not converge there leaves it."""
    settings = config.train
    model, failures = refit_mixture(
        evaluation.purchase_models[STACKED],
        full,
        config.features.time_unit,
        settings.penalizer,
        settings.retry_penalizer,
    )
    for kind, message in failures.items():
        notices.append(
            f"{display_name(kind)} did not converge on the whole log and left the stacked "
            f"mixture; the others' weights were renormalised. ({message})"
        )
    return model


def _refit_spend(
    evaluation: Evaluation, full: pd.DataFrame, config: Config, notices: list[str]
) -> SpendModel | CovariateSpendModel | None:
    """Gamma-Gamma on the whole log (with the covariates the evaluation chose); the caller runs
    it as the optional stage ``spend_refit`` (no value scores when it fails)."""
    plain = fit_spend_model(full, config.train.penalizer, config.train.retry_penalizer)
    if not isinstance(evaluation.spend_model, CovariateSpendModel):
        return plain
    try:
        return fit_configured(
            full,
            plain,
            config.covariates.model_dump(),
            config.train.penalizer,
            config.train.retry_penalizer,
        )
    except ModelFitError as exc:
        notices.append(
            f"Gamma-Gamma with covariates did not converge on the whole log; shipped the "
            f"plain Gamma-Gamma instead: {exc}"
        )
        return plain


def _train(
    config: Config,
    progress: Callable[[int, int], None] | None,
    inputs: RunInputs | None,
    stages: StageLog,
    drawn: Path,
) -> TrainResult:
    """The run (module docstring); ``drawn``, an empty folder, receives the evaluation's figures
    while the worker finishes the shipped classifier (logged from there with MLflow)."""
    if inputs is None:
        inputs = load_run_inputs(config, progress)
        stages(f"Read {inputs.log.report.transactions:,} transactions")
    log, attributes, surveys = inputs.log, inputs.attributes, inputs.surveys
    unit, settings = config.features.time_unit, config.train
    notices: list[str] = [log.report.implausible_note()] if log.report.implausible_note() else []
    drawing: list[warnings.WarningMessage] = []  # the figures' warnings (shown, not notices)
    with warnings.catch_warnings(record=True) as caught, background() as jobs:
        warnings.simplefilter("always")
        # both churn trainings run in turn on a worker thread (clv.background): LightGBM uses
        # the core that the purchase fits, the metrics and the refits leave idle. The shipped
        # window's training table is built by whichever line gets to it first: the main line
        # when it would otherwise wait for the scorecard's classifier (the worker's chain is the
        # longer one on logs of about a million customers), the worker when it is ahead
        split = choose_split(log, config)
        H = churn_horizon(config, split)
        evaluation_churn = jobs.submit(
            churn_window, log, config, split.calibration_end, H, attributes, surveys, jobs.stop
        )
        end = observation_end(log, config)
        latest = Handoff(
            lambda: churn_window_table(log, config, end, H, attributes, surveys, jobs.stop)
        )
        latest_churn = jobs.submit(_fit_handed, latest, config, jobs.stop)
        # the log's fingerprint (7 s at 100M rows) in the worker's idle tail on logs where the
        # main line is the longer chain; where the worker is, the main line takes it over
        fingerprint = Handoff(log.fingerprint)
        jobs.submit(fingerprint.build_if_free)
        evaluation = evaluate(
            log, config, attributes, surveys, stages, evaluation_churn, partial(_as_job, latest)
        )
        for kind, message in evaluation.scorecard.get("dropped", {}).items():
            notices.append(f"{label(kind)} dropped: {message}")
        rfm = build_rfm(log.compact, observation_end(log, config), unit)
        full = rfm
        if needs_log_gaps(evaluation.ranked_purchase_models):
            full = add_log_gaps(full, log.compact, observation_end(log, config), unit)
        if config.covariates.used:
            full = with_covariates(full, attributes, config)
        purchase = _refit(evaluation, full, config, notices)
        # the candidate it came from: a model shipped at its no-dropout limit has kind "nbd",
        # which is no candidate of the scorecard (nor the champion metric's source)
        chosen = getattr(purchase, "limit_of", None) or purchase.kind
        stages(f"Refitted {purchase.name} on the whole log ({len(full):,} customers)")
        spend = None
        if log.has_amounts and evaluation.spend_model is not None:
            spend = stages.optional(
                "spend_refit",
                lambda: _refit_spend(evaluation, full, config, notices),
                "no value scores",
            )
        if spend is not None:
            stages(f"Refitted Gamma-Gamma on {spend.n_customers:,} repeat buyers")
        # what needs no churn classifier is done while the worker finishes it: the KPI report,
        # the value tiers, the log's fingerprint (unless the worker has begun it), MLflow's
        # set-up and the evaluation's figures
        forecasting = Bundle(purchase, spend, config.to_dict(), fingerprint={})
        kpis = None
        if config.mlflow.enabled and config.kpis.in_train and log.has_amounts:
            kpis = stages.optional(
                "kpis",
                lambda: build_kpis(log, config, forecasting, surveys, rfm),  # RFM built above
                "the run logs no KPI report",
            )
            if kpis is not None:
                stages("Built the KPI report")
        s = config.score
        segments = define_segments(
            forecasting, full, s.segments, s.segment_rest, s.horizon, s.time_unit, s.discount_rate
        )
        digest = fingerprint.get()
        if config.mlflow.enabled:
            from clv.mlflow_store import tracking_uri
            from clv.plots import save_evaluation_figures
            from clv.tracking import prepare_logging

            prepare_logging(tracking_uri(config.mlflow.tracking_uri))
            # all but the shipped classifier's feature importance (drawn when it is logged)
            with warnings.catch_warnings(record=True) as drawing:
                stages.optional(
                    "figures",
                    lambda: save_evaluation_figures(
                        evaluation, log.compact, drawn, importance=False
                    ),
                    "the run logs no figures",
                )
        churn = stages.optional(
            "churn_classifier",
            lambda: _ship_churn(latest_churn.result(), config, purchase, full, notices),
            f"churn_probability is {purchase.name}'s P(no purchase) within {H:g} {unit}s",
        )
        if churn is None:
            reason = stages.skipped["churn_classifier"]["reason"]
            churn = without_classifier(H, unit, reason)
        else:
            stages(f"Retrained the churn model on the latest window ({churn.choice})")
    for item in caught:
        if issubclass(item.category, UserWarning):
            notices.append(str(item.message))
    for item in drawing:
        warnings.showwarning(item.message, item.category, item.filename, item.lineno)
    if not log.has_amounts:
        notices.append("The log has no amount column: purchase models only, no value columns.")
    elif spend is None:
        notices.append("No spend model: this bundle scores purchases and churn, not value.")
    notices = list(dict.fromkeys(notices + stages.notices()))
    if stages.skipped:  # the evaluation's skipped stages and the refit's
        evaluation.scorecard["skipped"] = dict(stages.skipped)
    selection = {
        "chosen": chosen,
        "criterion": f"holdout {evaluation.selection_metric} of purchases",
        "scores": {
            k: evaluation.scorecard["purchases"][k] for k in evaluation.scorecard["purchases"]
        },
        "calibration_params": {k: m.params for k, m in evaluation.purchase_models.items()},
        "dropped": evaluation.scorecard.get("dropped", {}),
        **evaluation.scorecard["protocol"],
    }
    bundle = Bundle(
        purchase=purchase,
        spend=spend,
        config=config.to_dict(),
        fingerprint=digest,
        cleaning=log.report.to_dict(),
        selection=selection,
        notices=notices,
        churn=churn,
        scorecard=evaluation.scorecard,
        segments=segments,
    )
    model_dir = Path(settings.model_dir)
    if not config.mlflow.enabled:  # no registry: the folder is simply this run's model
        path = save_bundle(bundle, model_dir)
        stages(f"Wrote the bundle to {path}")
        return TrainResult(
            bundle, path, evaluation, log, notices, stage_log=stages.lines, stages=stages
        )
    staging = leftover_name(model_dir, "staging")
    try:
        path = write_bundle_files(bundle, staging)
        result = TrainResult(
            bundle, path, evaluation, log, notices, stage_log=stages.lines, stages=stages
        )
        result.kpis = kpis
        _log_or_keep(result, config, stages, drawn)
        result.path = _place_bundle(result, model_dir, settings.model_dir_holds)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    stages(f"Bundle in {result.path} ({result.registry['alias']})")
    return result


def unlogged_dir(model_dir: Path) -> Path:
    """Where a bundle is kept when the tracking store fails while it is being logged."""
    return model_dir.with_name(f"{model_dir.name}-unlogged")


def _log_or_keep(result: TrainResult, config: Config, stages: StageLog, drawn: Path) -> None:
    """Log and register the run (:func:`clv.tracking.log_training_run`, with the figures drawn
    in ``drawn``); when the tracking store fails on the way, keep the bundle at
    :func:`unlogged_dir` and say how to go on."""
    from clv.mlflow_store import tracking_uri
    from clv.tracking import TrackingStoreError, log_training_run, store_errors

    example = input_example(result, config)
    scores = score_rfm(
        result.bundle, example, horizon=float(config.score.horizon), interval=config.score.interval
    )
    try:
        result.run_id, result.registry = log_training_run(
            result, config, example, scores, stages, drawn
        )
    except (*store_errors(), TrackingStoreError) as exc:
        kept = save_bundle(result.bundle, unlogged_dir(Path(config.train.model_dir)))
        raise TrackingStoreError(
            f"The MLflow tracking store {tracking_uri(config.mlflow.tracking_uri, redacted=True)} "
            "failed while this "
            f"run was being logged ({type(exc).__name__}: {str(exc).splitlines()[0][:300]}). "
            f"The trained model is complete and kept, unregistered, at {kept}: score with it "
            f"now (`clv score --model {kept}`). To log and register it, rerun the same "
            "`clv train` once the store answers (the same log and seed give the same model), "
            "or use --no-mlflow to write the model folder without tracking."
        ) from None


def input_example(result: TrainResult, config: Config) -> pd.DataFrame:
    """Five customers' model input (:func:`clv.predict.customer_features` at the log's end,
    with the attributes a model with covariates reads): the logged pyfunc model's input
    example, its numbers as doubles so that missing values fit the signature.

    The five are the first whose features are all known (a one-purchase customer has no
    spread of inter-purchase times), so that MLflow's ``input_example.json`` holds no ``NaN``
    token, which is not JSON; a log without five such customers gives its first five."""
    log = result.log
    as_of = pd.Timestamp(log.report.last_date)  # the full log's end, not the sample's
    attributes = model_attributes(result.bundle, config)
    frame = customer_features(
        result.bundle, log.first_customers(200), as_of=as_of, attributes=attributes
    )
    complete = frame.dropna()
    frame = (complete if len(complete) >= 5 else frame).head(5).reset_index(drop=True)
    numeric = frame.select_dtypes("number").columns
    return frame.astype({c: "float64" for c in numeric})


def challenger_dir(model_dir: Path, version: int) -> Path:
    """Where the bundle of registered version ``version`` lands when it is not the champion."""
    return model_dir.with_name(f"{model_dir.name}-v{version}")


def _place_bundle(result: TrainResult, model_dir: Path, holds: str = "champion") -> Path:
    """Move the staged bundle to its place: ``model_dir`` for a new champion (the folder that
    ``clv score`` uses by default), ``<model_dir>-v<version>`` for a challenger — unless
    ``holds == "latest"`` (``train.model_dir_holds``), when every run takes ``model_dir``."""
    registry = result.registry
    entry = {
        "registered_model": registry["registered_model"],
        "version": registry["version"],
        "alias": registry["alias"],
        "run_id": result.run_id,
    }
    served = registry["alias"] == "champion" or holds == "latest"
    target = model_dir if served else challenger_dir(model_dir, registry["version"])
    place_bundle(result.path, target, entry)
    result.bundle = replace(result.bundle, registry=entry)
    return target
