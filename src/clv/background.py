"""Work that runs beside the main line of a command, on one worker thread, in order.

A training run is mostly single-threaded Python and numpy (the purchase fits, the metrics, the
KPI report, MLflow), while the churn classifier's LightGBM cross-validation runs in C++ without
Python's lock. Started early on a worker thread, the classifier's trainings use the core the main
line leaves idle. The caller's threads are split while a job runs: half to the job, the rest to
the main line (:func:`clv.resources.beside_main`; on 2 CPUs one each, for LightGBM, DuckDB and
BLAS), so no thread waits for a core another holds. Results are the same as inline: the jobs get
the caller's settings (context variables are copied to the worker), and LightGBM
(``deterministic``) grew the same trees at 1 and 2 threads on the 1M-customer benchmark log —
only the ``num_threads`` line of the booster's text differs.

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

from clv import resources

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
        """Queue ``job(*args, **kwargs)``; it runs in a copy of the caller's context, with its
        share of the caller's threads (:func:`clv.resources.beside_main`)."""
        return self._executor.submit(copy_context().run, _beside_main, job, *args, **kwargs)

    def close(self, failed: bool) -> None:
        """Wait for the jobs; after a failure, stop them first (:class:`StoppedError`)."""
        self._executor.shutdown(wait=False, cancel_futures=failed)  # queued jobs never start
        if failed:
            self.stop.set()
        self._executor.shutdown(wait=True)


def _beside_main(job: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    with resources.beside_main():
        return job(*args, **kwargs)


class Handoff:
    """A value built once, by whichever line of work needs it first.

    The worker calls :meth:`get` when its job needs the value; the main line calls
    :meth:`build_if_free` where it would otherwise wait for the worker. Whoever claims it first
    builds it; the other waits for that result (or its exception: a failed build never leaves
    the other line waiting).
    """

    def __init__(self, build: Callable[[], R]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._claimed = False
        self._result: Future[R] = Future()

    def _claim(self) -> bool:
        with self._lock:
            claimed, self._claimed = self._claimed, True
        return not claimed

    def _run(self) -> None:
        try:
            self._result.set_result(self._build())
        except BaseException as exc:
            self._result.set_exception(exc)
            raise

    def build_if_free(self) -> bool:
        """Build the value here unless the other line has claimed it; whether this did."""
        if not self._claim():
            return False
        self._run()
        return True

    def get(self) -> R:
        """The value: built here if nobody claimed it, else what the claimer built."""
        if self._claim():
            self._run()
        return self._result.result()


@contextmanager
def background() -> Iterator[Background]:
    """A :class:`Background` for a ``with`` block: its jobs are finished when the block ends,
    or stopped when the block raises (including KeyboardInterrupt). BLAS runs at the main
    line's share of the threads inside (:func:`clv.resources.blas_beside_jobs`)."""
    jobs = Background()
    with resources.blas_beside_jobs():
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
