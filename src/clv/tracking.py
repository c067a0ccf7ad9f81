"""The one module that talks to MLflow: runs, plots, the pyfunc model and the registry.

Which store and with which client settings is :mod:`clv.mlflow_store`'s job; every function
here works inside its :func:`~clv.mlflow_store.session`, so the caller's MLflow tracking URI and
environment are left as they were.

A ``clv train`` run is one parent run: the config as params, data fingerprint and package
versions as tags, the scorecard as metrics (``purchases.bgnbd.mae``, ``churn.churn_model.roc_auc``
…, and ``purchases.chosen.*`` for the chosen model), plots as PNG artifacts, the scorecard JSON,
and the bundle as a pyfunc model; one child run per candidate purchase model and one for the
churn classifier. The model is registered under ``mlflow.registered_model`` (by default
``clv-<file stem>`` of the log: :func:`registered_model_name`) and gets the alias
``champion`` when it beats the current champion re-evaluated on the same split by a paired test
(:mod:`clv.promotion`), or there is none; else ``challenger``. The decision, both numbers and
the test statistic are tags ``registry.*`` on the run and on the model version.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from clv.errors import ClvError
from clv.mlflow_store import download_bundle, session, tracking_uri
from clv.uris import is_postgres, redact

if TYPE_CHECKING:
    from clv.bundle import Bundle
    from clv.config import Config
    from clv.evaluation import Evaluation
    from clv.kpis import KpiReport


class TrainedRun(Protocol):
    """What :func:`log_training_run` logs: a finished training
    (:class:`clv.training.TrainResult`)."""

    bundle: Bundle
    path: Path
    evaluation: Evaluation
    log: Any
    kpis: KpiReport | None
    stage_log: list[str]


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


def store_errors() -> tuple[type[BaseException], ...]:
    """The exceptions by which a failing tracking store shows itself: MLflow's own, the HTTP
    client's, the database's, and the file system's."""
    import requests
    import sqlalchemy
    from mlflow.exceptions import MlflowException

    return (
        MlflowException,
        requests.exceptions.RequestException,
        sqlalchemy.exc.SQLAlchemyError,
        OSError,
    )


#: Seconds :func:`check_store` waits for the tracking store to answer.
CHECK_TIMEOUT = 5.0


class TrackingStoreError(ClvError, RuntimeError):
    """The MLflow tracking store cannot be reached or used."""


def check_store(uri: str, timeout: float = CHECK_TIMEOUT) -> None:
    """Check, within ``timeout`` seconds, that the tracking store at ``uri`` can be used.

    A server (``http(s)://``) must answer its health endpoint; a sqlite store must be a database
    (or not exist yet) in a folder that can be written; a file store's folder must be writable.
    Other schemes (e.g. ``databricks``) are left to MLflow.

    Raises
    ------
    TrackingStoreError
        Naming the URI, what failed, and ``--no-mlflow``.
    """
    import sqlite3
    import urllib.error
    import urllib.request
    from urllib.parse import urlparse

    shown = redact(uri)
    advice = "Start or fix the store, point --tracking-uri elsewhere, or train with --no-mlflow."
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout):
                return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:  # it answers (a proxy, or a server without /health)
                return
            problem = f"it answered HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            problem = f"no answer within {timeout:g} s ({reason})"
        raise TrackingStoreError(f"MLflow tracking server {shown}: {problem}. {advice}")
    if parsed.scheme == "sqlite":
        path = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
        if path is None or str(path) in ("", ":memory:"):
            return
        folder = path.parent if path.parent != Path("") else Path.cwd()
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise TrackingStoreError(
                f"MLflow tracking store {shown}: the folder {folder} does not exist or cannot "
                f"be written. {advice}"
            )
        if path.exists():
            try:
                with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout) as con:
                    con.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.DatabaseError as exc:
                raise TrackingStoreError(
                    f"MLflow tracking store {shown}: {path} is not a usable sqlite database "
                    f"({exc}). {advice}"
                ) from None
        return
    if parsed.scheme in ("", "file"):
        folder = Path(parsed.path if parsed.scheme == "file" else uri)
        existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK):
            raise TrackingStoreError(
                f"MLflow tracking store {shown}: {folder} cannot be created or written. {advice}"
            )


def prepare_store(uri: str) -> None:
    """Create a new sqlite tracking store's tables one process at a time.

    MLflow creates the tables (and runs its migrations) on first use; two processes doing that
    at once on a fresh database crash one of them. The first use is therefore serialized by an
    ``flock`` on the database's folder. Other stores need nothing.
    """
    import fcntl

    if not uri.startswith("sqlite:///"):
        return
    folder = Path(uri.removeprefix("sqlite:///")).parent
    fd = os.open(folder if str(folder) else ".", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with session(uri):
            from mlflow.tracking import MlflowClient

            MlflowClient(uri).search_experiments(max_results=1)  # creates and migrates tables
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def prepare_logging(uri: str) -> None:
    """Import MLflow and create a new sqlite store's tables (:func:`prepare_store`): the first
    second or two of :func:`log_training_run`, which training runs while its last classifier
    trains (the core is otherwise idle). A store that fails here fails again when the run is
    logged, where the trained bundle is kept, so its errors are left for then."""
    import mlflow  # noqa: F401  (about a second of imports, needed for the logging anyway)

    try:
        prepare_store(uri)
    except store_errors():
        return


#: Shown as the experiment's description in the MLflow UI.
EXPERIMENT_NOTE = (
    "clv training runs. Compare them by `purchases.chosen.poisson_deviance` (holdout Poisson "
    "deviance of the chosen purchase model, lower is better; beside `purchases.naive.*`, the "
    "naive rate), `churn.churn_model.roc_auc` (churn classifier, holdout) and "
    "`value.chosen.normalized_gini` (CLV ranking). Each run's Dataset column is its transaction "
    "log: the full log (context `training`) and the calibration part (context `calibration`). "
    "Child runs hold each candidate model; `registry.*` tags say champion or challenger and why."
)


def use_experiment(mlflow: Any, name: str) -> str:
    """Make ``name`` the active experiment, created as a model-training experiment (the UI then
    opens on its runs table, not the GenAI view) with :data:`EXPERIMENT_NOTE` as description;
    an existing experiment gets those tags when it lacks them. Returns its id."""
    from mlflow.tracking import MlflowClient

    tags = {
        "mlflow.experimentKind": "custom_model_development",
        "mlflow.note.content": EXPERIMENT_NOTE,
    }
    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is None:
        experiment_id = client.create_experiment(name, tags=tags)
    else:
        experiment_id = found.experiment_id
        for key, value in tags.items():
            if key not in found.tags:
                client.set_experiment_tag(experiment_id, key, value)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def log_datasets(run_id: str, result: TrainedRun, config: Config) -> None:
    """Log the run's transaction log as MLflow dataset inputs: the full log (context
    ``training``) and its calibration part (context ``calibration``), each with its source
    (credentials redacted), a digest from the log's fingerprint, its schema, and a profile of
    rows, customers and dates."""
    import json

    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.tracking import MlflowClient

    from clv.data.compact import AMOUNT, CUSTOMER, DATE, day_number

    log, fingerprint = result.log, result.bundle.fingerprint
    source = str(config.data.transactions)
    name = source_name(config)
    where = {"uri": redact(source)}
    if is_postgres(source):
        where |= {"table": config.data.table} if config.data.table else {"query": config.data.query}
    columns = [{"type": "string", "name": CUSTOMER}, {"type": "datetime", "name": DATE}]
    if log.has_amounts:
        columns.append({"type": "double", "name": AMOUNT})
    schema = json.dumps({"mlflow_colspec": columns})
    cut = result.evaluation.split.calibration_end
    before = log.compact.run(
        "SELECT COUNT(*) AS n FROM tx WHERE day <= $cut", {"cut": day_number(cut)}
    )
    parts = {
        "training": (name, fingerprint["sha256"], fingerprint),
        "calibration": (
            f"{name} to {cut.date()}",
            hashlib.sha256(f"{fingerprint['sha256']} {cut.date()}".encode()).hexdigest(),
            {
                "transactions": int(before["n"].iloc[0]),
                "customers": len(result.evaluation.calibration),
                "first_date": fingerprint["first_date"],
                "last_date": str(cut.date()),
            },
        ),
    }
    inputs = []
    for context, (title, digest, counts) in parts.items():
        profile = {k: counts[k] for k in ("transactions", "customers", "first_date", "last_date")}
        dataset = Dataset(
            name=title,
            digest=digest[:32],
            source_type="postgresql" if is_postgres(source) else "local",
            source=json.dumps(where),
            schema=schema,
            profile=json.dumps({"num_rows": profile["transactions"], **profile}),
        )
        inputs.append(DatasetInput(dataset, [InputTag("mlflow.data.context", context)]))
    MlflowClient().log_inputs(run_id, datasets=inputs)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts into dotted keys (lists are kept as values).

    >>> flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3})
    {'a.b': 1, 'a.c.d': 2, 'e': 3}
    """
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def mlflow_name(key: str) -> str:
    """``key`` with the characters MLflow's metric and param names reject written ``_`` (a
    covariate's level may hold any text)."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", key)


def scorecard_metrics(scorecard: dict[str, Any], chosen: str) -> dict[str, float]:
    """The scorecard's numbers as MLflow metrics, with ``purchases.chosen.*`` aliases."""
    names = (
        "purchases",
        "zero_forecast",
        "value",
        "churn",
        "intervals",
        "regularity",
        "selection",  # each candidate's mean loss over the holdout windows and windows won
        "stacking",  # the stacked mixture's weights and the holdout log scores
    )
    sections = {k: scorecard[k] for k in names if k in scorecard}
    if "covariates" in scorecard:
        sections["covariates"] = scorecard["covariates"]["models"]
    if "spend_covariates" in scorecard:
        sections["spend_covariates"] = scorecard["spend_covariates"]
    out = {
        mlflow_name(k): float(v)
        for k, v in flatten(sections).items()
        if isinstance(v, (int, float))
    }
    for section in ("purchases", "value"):
        for metric, value in scorecard.get(section, {}).get(chosen, {}).items():
            out[f"{section}.chosen.{metric}"] = float(value)
    return {k: v for k, v in out.items() if np.isfinite(v)}


def _register(
    mlflow: Any, model_uri: str, result: TrainedRun, config: Config, metrics: dict[str, float]
) -> dict[str, Any]:
    """Register the run's model and set its alias by :func:`clv.promotion.decide`."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from clv.promotion import decide

    name, metric = registered_model_name(config), config.mlflow.champion_metric
    if metric not in metrics:
        raise ClvError(
            f"mlflow.champion_metric {metric!r} is not in this run's scorecard; "
            f"choose one of e.g. {sorted(metrics)[:8]}."
        )
    client = MlflowClient()
    version = mlflow.register_model(model_uri, name).version
    try:
        champion = client.get_model_version_by_alias(name, "champion")
    except MlflowException as exc:
        if not no_such_alias(exc):  # auth, network, a damaged store: never "no champion"
            raise TrackingStoreError(
                f"Could not look up the champion of {name!r} in the registry at "
                f"{mlflow.get_tracking_uri()}: {exc}. The new model was registered as version "
                f"{version} without an alias; set it by hand once the registry answers."
            ) from None
        champion = None
    champion_bundle = None
    if champion is not None:
        from clv.bundle import load_bundle

        champion_bundle = load_bundle(
            download_bundle(f"models:/{name}/{champion.version}", mlflow.get_tracking_uri())
        )
    outcome = decide(result, config.to_dict(), champion_bundle, metric)
    client.set_registered_model_alias(name, outcome["alias"], version)
    decision = {
        "registered_model": name,
        "version": int(version),
        "alias": outcome["alias"],
        "decision": outcome["decision"],
        "metric": metric,
        "value": metrics[metric],
        "champion_version": int(champion.version) if champion else None,
    } | {k: v for k, v in outcome.items() if k not in ("alias", "decision", "promote")}
    for key in ("decision", "metric", "value", "champion_version", "z"):
        if decision.get(key) is not None:
            client.set_model_version_tag(name, version, f"registry.{key}", str(decision[key]))
    return decision


def no_such_alias(exc: Exception) -> bool:
    """Whether a registry error only says that the alias (or the model) does not exist yet."""
    code = getattr(exc, "error_code", "")
    text = str(exc).lower()
    return code == "RESOURCE_DOES_NOT_EXIST" or (
        code == "INVALID_PARAMETER_VALUE" and "alias" in text and "not found" in text
    )


def registered_model_name(config: Config) -> str:
    """``mlflow.registered_model``, else one derived from the data source: ``clv-<file stem>``
    (``clv-cdnow`` for the embedded log), so unrelated logs never share a champion."""
    if config.mlflow.registered_model:
        return config.mlflow.registered_model
    stem = source_name(config)
    return "clv-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in stem.lower())


def source_name(config: Config) -> str:
    """A short name of the log: a file's stem (``cdnow`` for the embedded log); for PostgreSQL
    the database and the table, or a digest of the query (``shop-sales.orders``)."""
    source = str(config.data.transactions)
    if is_postgres(source):
        database = urlparse(source).path.strip("/") or "postgres"
        query = hashlib.sha256(str(config.data.query).encode()).hexdigest()[:8]
        return f"{database}-{config.data.table or 'query-' + query}"
    return Path(source.rstrip("/")).name.split(".")[0] or "log"


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
        skipped = bundle.scorecard.get("skipped", {})  # optional stages that failed
        tags |= {f"skipped.{k}": entry["reason"][:1000] for k, entry in skipped.items()}
        if skipped:
            tags["skipped"] = ", ".join(skipped)
        mlflow.set_tags(tags)
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
        for kind, model in ev.purchase_models.items():
            with mlflow.start_run(run_name=model.name, nested=True):
                values = {**model.params, **getattr(model, "coefficients", {})}
                mlflow.log_params(
                    {mlflow_name(f"param.{k}"): v for k, v in values.items()} | {"kind": kind}
                )
                child = {
                    m: float(v)
                    for m, v in bundle.scorecard["purchases"][kind].items()
                    if v is not None
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
        decision = _register(mlflow, info.model_uri, result, config, metrics)
        mlflow.set_tags({f"registry.{k}": str(v) for k, v in decision.items()})
        report(
            f"Registered {decision['registered_model']} v{decision['version']} as "
            f"{decision['alias']}"
        )
        mlflow.log_text("\n".join(result.stage_log) + "\n", "train.log")
    return run_id, decision


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


def model_versions(name: str, tracking: str | None = None) -> list[dict[str, Any]]:
    """Every registered version of ``name``, newest first: aliases, run, chosen model, the
    champion metric, data window and the registry decision (for ``clv models``)."""
    with session(tracking_uri(tracking)):
        return _versions(name)


def _versions(name: str) -> list[dict[str, Any]]:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException as exc:
        raise ClvError(f"Could not list the versions of {name!r}: {exc}") from None
    if not versions:
        raise ClvError(f"No registered model {name!r} in {client.tracking_uri}.")
    rows = []
    for found in sorted(versions, key=lambda v: -int(v.version)):
        version = client.get_model_version(name, found.version)  # search omits aliases
        run = client.get_run(version.run_id)
        tags, metrics = run.data.tags, run.data.metrics
        metric = tags.get("registry.metric", "")
        rows.append(
            {
                "version": int(version.version),
                "aliases": list(version.aliases),
                "run_id": version.run_id,
                "chosen_model": tags.get("chosen_model", ""),
                "metric": metric,
                "value": metrics.get(metric),
                "data": f"{tags.get('data.first_date', '?')} .. {tags.get('data.last_date', '?')}",
                "decision": version.tags.get(
                    "registry.decision", tags.get("registry.decision", "")
                ),
            }
        )
    return rows


def promote(
    name: str, version: int | None = None, run_id: str | None = None, tracking: str | None = None
) -> int:
    """Make a version (given, or the one registered from ``run_id``) the champion; returns it."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    if (version is None) == (run_id is None):
        raise ClvError("Name exactly one of --version or --run.")
    rows = model_versions(name, tracking)
    if run_id is not None:
        matches = [r["version"] for r in rows if r["run_id"] == run_id]
        if not matches:
            raise ClvError(f"Run {run_id} registered no version of {name!r}.")
        version = matches[0]
    if version not in {r["version"] for r in rows}:
        raise ClvError(f"{name!r} has no version {version}; `clv models` lists them.")
    try:
        with session(tracking_uri(tracking)):
            client = MlflowClient()  # tracking and registry: the session's store
            client.set_registered_model_alias(name, "champion", str(version))
            client.set_model_version_tag(
                name, str(version), "registry.decision", "promoted by hand"
            )
    except MlflowException as exc:
        raise ClvError(f"Could not promote {name!r} v{version}: {exc}") from None
    return int(version)


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
