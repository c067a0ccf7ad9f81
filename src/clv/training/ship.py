"""Shipping: the bundle logged and registered in MLflow and put in place (the champion's folder
or a challenger's), or kept at ``<model_dir>-unlogged`` when the store fails."""

from __future__ import annotations

import shutil
import warnings
from dataclasses import replace
from pathlib import Path

import pandas as pd

from clv.bundle import Bundle, place_bundle, save_bundle, write_bundle_files
from clv.config import Config
from clv.data.log import TransactionLog
from clv.evaluation import Evaluation
from clv.kpis import KpiReport
from clv.predict import customer_features, model_attributes, score_rfm
from clv.stages import StageLog
from clv.tables import leftover_name
from clv.training.result import TrainResult


def unlogged_dir(model_dir: Path) -> Path:
    """Where a bundle is kept when the tracking store fails while it is being logged."""
    return model_dir.with_name(f"{model_dir.name}-unlogged")


def log_or_keep(result: TrainResult, config: Config, stages: StageLog, drawn: Path) -> None:
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


def place_run_bundle(result: TrainResult, model_dir: Path, holds: str = "champion") -> Path:
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


def draw_figures(
    config: Config, evaluation: Evaluation, log: TransactionLog, drawn: Path, stages: StageLog
) -> list[warnings.WarningMessage]:
    """With MLflow: its set-up (:func:`clv.tracking.prepare_logging`) and the evaluation's
    figures drawn into ``drawn`` (the optional stage ``figures``; all but the shipped
    classifier's feature importance, drawn when it is logged) while the worker finishes the
    shipped classifier. Returns the figures' warnings, to be shown (they are not notices)."""
    if not config.mlflow.enabled:
        return []
    from clv.mlflow_store import tracking_uri
    from clv.plots import save_evaluation_figures
    from clv.tracking import prepare_logging

    prepare_logging(tracking_uri(config.mlflow.tracking_uri))
    with warnings.catch_warnings(record=True) as drawing:
        stages.optional(
            "figures",
            lambda: save_evaluation_figures(evaluation, log.compact, drawn, importance=False),
            "the run logs no figures",
        )
    return drawing


def ship(
    bundle: Bundle,
    evaluation: Evaluation,
    log: TransactionLog,
    kpis: KpiReport | None,
    config: Config,
    stages: StageLog,
    drawn: Path,
) -> TrainResult:
    """Write the bundle: without MLflow, to ``train.model_dir`` as a whole; with it, staged,
    logged and registered (:func:`log_or_keep`), then put in place (:func:`place_run_bundle`)."""
    notices = bundle.notices
    model_dir = Path(config.train.model_dir)
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
        log_or_keep(result, config, stages, drawn)
        result.path = place_run_bundle(result, model_dir, config.train.model_dir_holds)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    stages(f"Bundle in {result.path} ({result.registry['alias']})")
    return result
