"""Runs: a training run with its child runs, metrics, plots, datasets and pyfunc model; the KPI
report's and the monitor's runs."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from clv.mlflow_store import session, tracking_uri
from clv.tracking.datasets import TrainedRun, log_datasets
from clv.tracking.metrics import flatten, mlflow_name, scorecard_metrics
from clv.tracking.registry import register_version
from clv.tracking.store import prepare_store, use_experiment

if TYPE_CHECKING:
    from clv.config import Config


_REQUIREMENTS = (
    "lifetimes",
    "pandas",
    "numpy",
    "scipy",
    "duckdb",
    "pyarrow",
    "lightgbm",
    "scikit-learn",
    "mlflow",
    "pydantic",
    "pyyaml",
    "typer",
    "rich",
    "matplotlib",
)


def _pip_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in _REQUIREMENTS:
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            out.append(name)
    return out


def log_training_run(
    result: TrainedRun,
    config: Config,
    example: pd.DataFrame,
    example_scores: pd.DataFrame,
    stages: Callable[[str], None] | None = None,
    drawn: Path | None = None,
) -> tuple[str, dict[str, Any]]:
    """Log a finished training run to MLflow and register its model (module docstring).

    Parameters
    ----------
    result : TrainedRun
        The finished training.
    config : Config
        Its settings (``mlflow`` section: where and under which names).
    example, example_scores : pandas.DataFrame
        A few customers' model input and their scores: the pyfunc model's input example and
        signature (built by the caller, which knows how to score).
    stages : callable, optional
        Called with a line as logging and registration end; the lines of ``result.stage_log``
        so far are logged as the run's ``train.log``.
    drawn : Path, optional
        A folder with the evaluation's figures drawn already (all but the shipped classifier's
        feature importance: :func:`clv.plots.save_evaluation_figures` with
        ``importance=False``); without it they are drawn here.

    Returns
    -------
    tuple
        The parent run id and the registry decision.
    """
    uri = tracking_uri(config.mlflow.tracking_uri)
    prepare_store(uri)
    with session(uri) as mlflow:
        return _log_run(mlflow, result, config, example, example_scores, stages, drawn)


def _log_run(
    mlflow: Any,
    result: TrainedRun,
    config: Config,
    example: pd.DataFrame,
    output: pd.DataFrame,
    stages: Callable[[str], None] | None,
    drawn: Path | None,
) -> tuple[str, dict[str, Any]]:
    import clv

    bundle, ev = result.bundle, result.evaluation
    chosen = bundle.selection["chosen"]
    metrics = scorecard_metrics(bundle.scorecard, chosen)
    use_experiment(mlflow, config.mlflow.experiment)
    with mlflow.start_run(run_name=f"train {bundle.purchase.name}") as parent:
        run_id = parent.info.run_id
        log_datasets(run_id, result, config)
        params = {k: str(v) for k, v in flatten(config.to_dict()).items()}
        mlflow.log_params(params)
        mlflow.set_tags(_run_tags(bundle, chosen))
        errors = {
            mlflow_name(f"purchase_model.se.{k}"): v
            for k, v in bundle.purchase.standard_errors.items()
        }
        if bundle.spend is not None:
            errors |= {
                mlflow_name(f"spend_model.se.{k}"): v
                for k, v in bundle.spend.standard_errors.items()
            }
        mlflow.log_metrics(metrics | errors)
        _log_child_runs(mlflow, bundle, ev, chosen, metrics)
        with tempfile.TemporaryDirectory() as tmp:
            from clv.plots import save_evaluation_figures, save_importance_figure

            churn = bundle.churn  # the shipped model's importance
            if drawn is None:
                save_evaluation_figures(result.evaluation, result.log.compact, Path(tmp), churn)
            else:
                mlflow.log_artifacts(str(drawn), artifact_path="plots")
                save_importance_figure(churn, Path(tmp))
            mlflow.log_artifacts(tmp, artifact_path="plots")
        mlflow.log_artifact(str(result.path / "scorecard.json"))
        if result.kpis is not None:
            log_kpi_report(result.kpis, config, active=True)
        from clv.pyfunc import signature

        params_schema = {
            "horizon": float(config.score.horizon),
            "discount_rate": float(config.score.discount_rate),
            "margin": float(config.score.margin),
            "time_unit": config.score.time_unit or bundle.time_unit,
            "interval": float(config.score.interval),
        }
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(clv.__file__).parent / "pyfunc_entry.py"),
            artifacts={"bundle": str(result.path)},
            code_paths=[str(Path(clv.__file__).parent)],
            signature=signature(bundle, output, params_schema),
            input_example=example,
            pip_requirements=_pip_requirements(),
        )
        report = stages if stages is not None else (lambda message: None)
        report(f"Logged MLflow run {run_id} (metrics, plots, model)")
        decision = register_version(mlflow, info.model_uri, result, config, metrics)
        mlflow.set_tags({f"registry.{k}": str(v) for k, v in decision.items()})
        report(
            f"Registered {decision['registered_model']} v{decision['version']} as "
            f"{decision['alias']}"
        )
        mlflow.log_text("\n".join(result.stage_log) + "\n", "train.log")
    return run_id, decision


def _run_tags(bundle: Any, chosen: str) -> dict[str, str]:
    """A training run's tags: the data fingerprint, package versions, the choices, the
    candidates dropped and optional stages skipped, with why, and the nested candidates that
    left the choice to a larger model."""
    tags = {f"data.{k}": str(v) for k, v in bundle.fingerprint.items()}
    tags |= {f"version.{k}": v for k, v in bundle.versions.items()}
    tags |= {
        "chosen_model": chosen,
        "churn_choice": bundle.churn.choice if bundle.churn else "none",
    }
    dropped = bundle.scorecard.get("dropped", {})
    tags |= {f"dropped.{k}": message[:1000] for k, message in dropped.items()}
    if dropped:
        tags["dropped"] = ", ".join(dropped)
    # a nested model whose fit was the larger model's: the larger competed for both
    tags |= {f"same_as.{k}": v for k, v in bundle.scorecard.get("same_as", {}).items()}
    skipped = bundle.scorecard.get("skipped", {})  # optional stages that failed
    tags |= {f"skipped.{k}": entry["reason"][:1000] for k, entry in skipped.items()}
    if skipped:
        tags["skipped"] = ", ".join(skipped)
    return tags


def _log_child_runs(
    mlflow: Any, bundle: Any, ev: Any, chosen: str, metrics: dict[str, float]
) -> None:
    """A child run per candidate purchase model (its parameters and holdout scores) and one for
    the churn classifier."""
    for kind, model in ev.purchase_models.items():
        with mlflow.start_run(run_name=model.name, nested=True):
            values = {**model.params, **getattr(model, "coefficients", {})}
            mlflow.log_params(
                {mlflow_name(f"param.{k}"): v for k, v in values.items()} | {"kind": kind}
            )
            child = {
                m: float(v) for m, v in bundle.scorecard["purchases"][kind].items() if v is not None
            }
            child |= {
                f"value.{m}": float(v)
                for m, v in bundle.scorecard.get("value", {}).get(kind, {}).items()
            }
            child["log_likelihood"] = model.log_likelihood
            child |= {mlflow_name(f"se.{k}"): v for k, v in model.standard_errors.items()}
            mlflow.log_metrics({k: v for k, v in child.items() if np.isfinite(v)})
            mlflow.set_tag("chosen", str(kind == chosen).lower())
    if bundle.churn is not None:
        with mlflow.start_run(run_name="churn classifier", nested=True):
            churn = bundle.churn
            mlflow.log_params(
                {
                    "choice": churn.choice,
                    "blend_weight": churn.blend_weight,
                    "horizon": churn.horizon,
                    "features": len(churn.features),
                }
            )
            mlflow.log_metrics(
                {f"validation.{k}": v for k, v in churn.validation.get("oof_auc", {}).items()}
                | {
                    k.removeprefix("churn."): v
                    for k, v in metrics.items()
                    if k.startswith("churn.")
                }
            )
            mlflow.set_tag("decision", churn.validation.get("decision", ""))


def log_kpi_report(report: Any, config: Config, active: bool = False) -> str:
    """Log a KPI report (HTML, JSON, CSV) as artifacts under ``kpis/``, and its headline numbers
    as metrics; into the active run, or a new run named ``kpis``. Returns the run id."""
    from clv.report import write_report

    summary = report.summary
    numbers = {
        f"kpi.{k}": v
        for k, v in flatten(summary).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
    }
    numbers = {k.replace(" ", "_"): float(v) for k, v in numbers.items()}

    def log(mlflow: Any) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            write_report(report, tmp)
            mlflow.log_artifacts(tmp, artifact_path="kpis")
        mlflow.log_metrics(numbers)
        return mlflow.active_run().info.run_id

    with session(tracking_uri(config.mlflow.tracking_uri)) as mlflow:
        if active:
            return log(mlflow)
        use_experiment(mlflow, config.mlflow.experiment)
        with mlflow.start_run(run_name="kpis"):
            mlflow.log_params(
                {"as_of": summary["as_of"], "lost_definition": summary["lost_definition"]}
            )
            return log(mlflow)


#: The sections of a monitoring summary logged as metrics.
MONITOR_SECTIONS = ("purchases", "value", "churn", "drift")


def log_monitoring(result: Any, paths: list[Path], config: Config) -> str:
    """Log a ``clv monitor`` result as a run tagged with the model's name and version."""
    from clv.monitor import model_title

    summary = result.summary
    model = summary["model"]
    with session(tracking_uri(config.mlflow.tracking_uri)) as mlflow:
        use_experiment(mlflow, config.mlflow.experiment)
        with mlflow.start_run(run_name=f"monitor {model_title(model)}") as run:
            mlflow.set_tags(
                {
                    "clv.kind": "monitor",
                    "model.name": str(model.get("registered_model")),
                    "model.version": str(model.get("version")),
                    "model.run_id": str(model.get("run_id")),
                    "window": f"{summary['window']['from']} .. {summary['window']['to']}",
                    "retrain": str(summary["retrain"]).lower(),
                }
            )
            numbers = {
                k: float(v)
                for k, v in flatten(
                    {k: summary[k] for k in MONITOR_SECTIONS if k in summary}
                ).items()
                if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
            }
            mlflow.log_metrics(numbers)
            for path in paths:
                mlflow.log_artifact(str(path), artifact_path="monitor")
            return run.info.run_id
