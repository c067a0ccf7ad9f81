"""The model registry: names, versions, aliases, the champion/challenger decision at
registration, and promotion by hand."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clv.errors import ClvError
from clv.mlflow_store import download_bundle, session, tracking_uri
from clv.tracking.datasets import TrainedRun, source_name
from clv.tracking.store import TrackingStoreError

if TYPE_CHECKING:
    from clv.config import Config


def register_version(
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
