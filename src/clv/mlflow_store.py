"""Reaching MLflow: which tracking store, with which client settings, and fetching a bundle.

Below both scoring (``clv score --model models:/NAME@champion`` names a bundle in the registry)
and tracking (:mod:`clv.tracking` logs runs and registers models). Nothing here changes the
process for longer than a call: :func:`session` points MLflow at a store and sets clv's client
defaults for the duration of a ``with`` block, then puts back the caller's tracking URI and
environment. (MLflow decides about telemetry once, when it is first imported: if that happens
inside a session, telemetry stays off for the process, as clv wants.)

Tracking URI: ``mlflow.tracking_uri`` in the config (``--tracking-uri``), else
``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the working directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clv.errors import ClvError
from clv.resources import environment
from clv.uris import redact

DEFAULT_URI = "sqlite:///mlflow.db"

#: MLflow client settings unless the user set them: no telemetry, synchronous logging, and HTTP
#: retries that give up in seconds (MLflow's own defaults — 7 retries with exponential backoff,
#: 120 s timeouts — keep a run waiting for minutes on a dead server).
CLIENT_DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def tracking_uri(configured: str | None = None, redacted: bool = False) -> str:
    """The tracking URI to use (see the module docstring); ``redacted`` hides a password in it
    (for messages)."""
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    if uri == DEFAULT_URI:
        uri = f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    return redact(uri) if redacted else uri


@contextmanager
def session(uri: str) -> Iterator[Any]:
    """The ``mlflow`` module, pointed at ``uri`` with :data:`CLIENT_DEFAULTS` for the block.

    On exit the caller's tracking URI (``mlflow.set_tracking_uri`` or ``$MLFLOW_TRACKING_URI``)
    and environment are as they were.
    """
    # set_tracking_uri writes $MLFLOW_TRACKING_URI too: it is put back with the defaults
    with environment(CLIENT_DEFAULTS, restore=("MLFLOW_TRACKING_URI",)):
        import mlflow
        from mlflow.tracking._tracking_service import utils

        previous = utils._tracking_uri  # None unless the caller set one
        mlflow.set_tracking_uri(uri)
        try:
            yield mlflow
        finally:
            mlflow.set_tracking_uri(previous)


def download_bundle(uri: str, tracking: str | None = None) -> Path:
    """Download the bundle of an MLflow model (``models:/NAME@alias``, ``runs:/ID/model``).

    ``tracking`` is the tracking URI; by default ``$MLFLOW_TRACKING_URI`` or
    ``sqlite:///mlflow.db`` in the working directory.
    """
    with session(tracking_uri(tracking)) as mlflow:
        from mlflow.exceptions import MlflowException

        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
        except (MlflowException, OSError) as exc:
            raise ClvError(f"Could not fetch model {uri}: {exc}") from None
    candidates = [p.parent for p in local.rglob("bundle.json")]
    if not candidates:
        raise ClvError(f"{uri} holds no clv bundle (no bundle.json among its artifacts).")
    return candidates[0]
