"""What a training run holds and checks before any work: the model folder, its lock, the
tracking store."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from clv.bundle import check_bundle_folder
from clv.config import Config
from clv.locks import folder_lock
from clv.outputs import input_paths

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
