"""Work that runs beside the main line of a command, on one worker thread, in order.

A training run is mostly single-threaded Python and numpy (the purchase fits, the metrics, the
KPI report, MLflow), while the churn classifier's LightGBM cross-validation runs in C++ without
Python's lock. Started early on a worker thread, the classifier's trainings use the core the main
line leaves idle. Results are the same as inline: the jobs get the caller's thread limits
(:mod:`clv.resources` lives in context variables, copied to the worker) and LightGBM is
deterministic for a given thread count.

Faults: when the main line fails or is interrupted, :func:`background` cancels the jobs that
have not started and sets :attr:`Background.stop`; a running job checks it between its steps
and at each boosting round (:func:`stop_callback`) and ends with :class:`StoppedError`, so a
Ctrl-C or SIGTERM is not held up by a training nobody will read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import copy_context
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class StoppedError(Exception):
    """A background job ended early because the command it served is ending."""


class Background:
    """One worker thread; jobs run in the order they were submitted (:func:`background`)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clv-background")

    def submit(self, job: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        """Queue ``job(*args, **kwargs)``; it runs in a copy of the caller's context."""
        return self._executor.submit(copy_context().run, job, *args, **kwargs)

    def close(self, failed: bool) -> None:
        """Wait for the jobs; after a failure, stop them first (:class:`StoppedError`)."""
        self._executor.shutdown(wait=False, cancel_futures=failed)  # queued jobs never start
        if failed:
            self.stop.set()
        self._executor.shutdown(wait=True)


@contextmanager
def background() -> Iterator[Background]:
    """A :class:`Background` for a ``with`` block: its jobs are finished when the block ends,
    or stopped when the block raises (including KeyboardInterrupt)."""
    jobs = Background()
    try:
        yield jobs
    except BaseException:
        jobs.close(failed=True)
        raise
    jobs.close(failed=False)


def check(stop: threading.Event | None) -> None:
    """Raise :class:`StoppedError` when ``stop`` is set (a job's check between its steps)."""
    if stop is not None and stop.is_set():
        raise StoppedError("stopped: the command it served is ending")


def stop_callback(stop: threading.Event | None) -> Callable[[Any], None]:
    """A LightGBM callback that ends training at the next boosting round once ``stop`` is set."""

    def callback(env: Any) -> None:
        check(stop)

    callback.order = 0  # type: ignore[attr-defined]  # before early stopping's own callback
    return callback
