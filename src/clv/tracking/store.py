"""The tracking store before any work: which errors are the store's, a check that it answers,
a fresh sqlite store's tables made once, and the experiment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from clv.errors import ClvError
from clv.mlflow_store import session
from clv.uris import redact


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
