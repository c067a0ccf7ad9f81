"""Training: evaluate on a holdout, choose, refit on the whole log, ship a bundle.

1. Clean the log (:mod:`clv.data`); read customer attributes when ``train.customers`` is set.
2. Evaluate (:mod:`clv.evaluation`): split at the calibration cutoff, fit every candidate
   purchase model, Gamma-Gamma and a churn classifier on data up to the cutoff, and score the
   holdout against the baselines. The purchase model with the lowest holdout
   ``train.selection_metric`` (mean Poisson deviance by default) is chosen.
3. Refit the chosen purchase model and Gamma-Gamma on the whole log, and retrain the churn
   classifier on the latest leak-free window (features up to ``end − H``, labels from
   ``(end − H, end]``; :mod:`clv.churn`), with BG/NBD features from a fit on the whole log.
4. Write the bundle (:mod:`clv.bundle`). With MLflow enabled (:mod:`clv.tracking`) the bundle is
   staged beside ``train.model_dir``, logged and registered, then moved as a whole: to
   ``train.model_dir`` when it became the champion (so that folder, which ``clv score`` uses by
   default, always holds the champion), else to ``<model_dir>-v<version>``. Without MLflow it is
   written to ``train.model_dir``.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from clv.btyd import PurchaseModel, fit_purchase_model
from clv.bundle import Bundle, place_bundle, save_bundle
from clv.churn import ChurnModel, leak_free_window, train_churn_model
from clv.config import DAYS_PER_UNIT, Config
from clv.data import RunInputs, TransactionLog, load_run_inputs, read_customer_list
from clv.evaluation import Evaluation, churn_horizon, evaluate, observation_end
from clv.features import build_rfm
from clv.kpis import KpiReport
from clv.predict import define_segments
from clv.spend import SpendModel, fit_spend_model


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


def _ship_churn(
    log: TransactionLog,
    config: Config,
    H: float,
    purchase: PurchaseModel,
    full: pd.DataFrame,
    attributes: pd.DataFrame | None,
    surveys: pd.DataFrame | None,
    notices: list[str],
) -> ChurnModel:
    unit = config.features.time_unit
    end = observation_end(log, config)
    cutoff, note = leak_free_window(log.compact, end, round(H * DAYS_PER_UNIT[unit]))
    if note:
        notices.append(f"Churn model: {note}; churn_probability is for that horizon.")
    model = train_churn_model(
        log.compact,
        cutoff,
        end,
        unit,
        attributes,
        config.train.seed,
        surveys,
        config.train.churn_max_customers,
    )
    bgnbd = purchase if purchase.kind == "bgnbd" else fit_purchase_model("bgnbd", full, unit)
    return replace(model, btyd=bgnbd)


def build_kpis(
    log: TransactionLog, config: Config, bundle: Bundle | None, surveys: pd.DataFrame | None
) -> KpiReport:
    """The KPI report (:mod:`clv.kpis`) with the cost and customer tables the config names."""
    from clv.kpis import build_report
    from clv.tables import read_table

    settings = config.kpis
    col = config.data.customer_col
    costs = read_table(settings.costs, string_columns=(col,)) if settings.costs else None
    if costs is not None and col in costs:
        costs = costs.rename(columns={col: "customer_id"})
    customers = read_customer_list(settings.customers, col) if settings.customers else None
    return build_report(
        log, config, observation_end(log, config), bundle, surveys, costs, customers
    )


class StageLog:
    """Stage messages with the seconds since the run started, passed on as they happen.

    ``sink`` (e.g. the CLI's printer) receives each line at once; ``lines`` keeps them for the
    run's log file (``train.log`` in the MLflow run).
    """

    def __init__(self, sink: Callable[[str], None] | None = None) -> None:
        self.lines: list[str] = []
        self._sink = sink
        self._start = time.perf_counter()

    def __call__(self, message: str) -> None:
        line = f"[{time.perf_counter() - self._start:7.1f} s] {message}"
        self.lines.append(line)
        if self._sink is not None:
            self._sink(line)


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
    """
    stages = stages if stages is not None else StageLog()
    if inputs is None:
        inputs = load_run_inputs(config, progress)
        stages(f"Read {inputs.log.report.transactions:,} transactions")
    log, attributes, surveys = inputs.log, inputs.attributes, inputs.surveys
    unit, settings = config.features.time_unit, config.train
    notices: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluation = evaluate(log, config, attributes, surveys, stages)
        chosen = evaluation.best_purchase_model
        full = build_rfm(log.compact, observation_end(log, config), unit)
        purchase = fit_purchase_model(
            chosen, full, unit, settings.penalizer, settings.retry_penalizer
        )
        stages(f"Refitted {purchase.name} on the whole log ({len(full):,} customers)")
        spend: SpendModel | None = None
        if log.has_amounts:
            spend = fit_spend_model(full, settings.penalizer, settings.retry_penalizer)
            stages(f"Refitted Gamma-Gamma on {spend.n_customers:,} repeat buyers")
        H = churn_horizon(config, evaluation.split)
        churn = _ship_churn(log, config, H, purchase, full, attributes, surveys, notices)
        stages(f"Retrained the churn model on the latest window ({churn.choice})")
    for item in caught:
        if issubclass(item.category, UserWarning):
            notices.append(str(item.message))
    if not log.has_amounts:
        notices.append("The log has no amount column: purchase models only, no value columns.")
    notices = list(dict.fromkeys(notices))
    selection = {
        "chosen": chosen,
        "criterion": f"holdout {evaluation.selection_metric} of purchases",
        "scores": {
            k: evaluation.scorecard["purchases"][k] for k in evaluation.scorecard["purchases"]
        },
        "calibration_params": {k: m.params for k, m in evaluation.purchase_models.items()},
        **evaluation.scorecard["protocol"],
    }
    bundle = Bundle(
        purchase=purchase,
        spend=spend,
        config=config.to_dict(),
        fingerprint=log.fingerprint(),
        cleaning=log.report.to_dict(),
        selection=selection,
        notices=notices,
        churn=churn,
        scorecard=evaluation.scorecard,
    )
    s = config.score
    segments = define_segments(
        bundle, full, s.segments, s.segment_rest, s.horizon, s.time_unit, s.discount_rate
    )
    bundle = replace(bundle, segments=segments)
    if not config.mlflow.enabled:  # no registry: the folder is simply this run's model
        path = save_bundle(bundle, settings.model_dir)
        stages(f"Wrote the bundle to {path}")
        return TrainResult(bundle, path, evaluation, log, notices, stage_log=stages.lines)
    staging = _staging_dir(Path(settings.model_dir))
    try:
        path = save_bundle(bundle, staging)
        result = TrainResult(bundle, path, evaluation, log, notices, stage_log=stages.lines)
        if config.kpis.in_train and log.has_amounts:
            result.kpis = build_kpis(log, config, bundle, surveys)
            stages("Built the KPI report")
        from clv.tracking import log_training_run

        result.run_id, result.registry = log_training_run(result, config, stages)
        result.path = _place_bundle(result, Path(settings.model_dir), settings.model_dir_holds)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    stages(f"Bundle in {result.path} ({result.registry['alias']})")
    return result


def _staging_dir(model_dir: Path) -> Path:
    """A fresh sibling folder of ``model_dir`` for a bundle whose destination is not known yet."""
    staging = model_dir.parent / f".{model_dir.name}.staging-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)  # the umask's mode, as for any folder the user makes
    return staging


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
