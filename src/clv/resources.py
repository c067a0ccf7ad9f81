"""What a run may use of the machine: threads sized from its CPUs, and environment variables
set for a block only (:func:`environment`).

LightGBM, DuckDB and the BLAS under numpy/scipy each start a thread per core by default, and
LightGBM's OpenMP threads spin while they wait for a core. On a shared machine (a CI runner, a
JupyterHub, a Spark executor with neighbours) that turns a 10-second training into minutes. clv
therefore:

- counts the CPUs it may use — the scheduler affinity (``os.sched_getaffinity``) and a cgroup
  CPU quota (``cpu.max`` or ``cpu.cfs_quota_us``), whichever is smaller — not the machine's cores;
- runs its work inside :func:`limits`, which caps DuckDB, LightGBM and BLAS at that many threads
  (or ``resources.threads`` in the config, ``--threads`` on the command line) for a ``with``
  block, and puts the caller's settings back after it;
- lets the ``clv`` command set ``OMP_WAIT_POLICY=PASSIVE`` before any library loads (unless the
  user chose how OpenMP threads wait; :func:`clv.cli.openmp_defaults`), so waiting OpenMP
  threads sleep instead of spinning. Library users who share a machine should set it in their
  environment before importing LightGBM.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

_THREADS: ContextVar[int | None] = ContextVar("clv_threads", default=None)
_WORKER: ContextVar[bool] = ContextVar("clv_worker_threads", default=False)
#: Jobs running beside the main line now (:func:`beside_main`): a process-wide count, since the
#: CPUs are the process's.
_JOBS_RUNNING = 0
_LOCK = threading.Lock()


def _cgroup_cpus() -> float | None:
    """The cgroup CPU quota in CPUs (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``), None without."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def available_cpus() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup quota (rounded up), ≥ 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpus()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


@contextmanager
def environment(defaults: dict[str, str], restore: tuple[str, ...] = ()) -> Iterator[None]:
    """``defaults`` in ``os.environ`` where the caller has not set them, for a ``with`` block;
    afterwards those variables, and the ``restore`` ones a library may set inside, are as they
    were."""
    saved = {key: os.environ.get(key) for key in (*defaults, *restore)}
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def threads() -> int:
    """Threads for the current work: the :func:`limits` in force, else :func:`available_cpus`;
    a job beside the main line (:func:`beside_main`) gets its share of them, and the main line
    the rest while such a job runs."""
    total = _total()
    if _WORKER.get():
        return worker_threads(total)
    return _main_share(total) if _jobs_running() else total


def _total() -> int:
    """The run's threads: the :func:`limits` in force, else :func:`available_cpus`."""
    return _THREADS.get() or available_cpus()


def _jobs_running() -> bool:
    """Whether a job runs beside the main line now (:func:`beside_main`)."""
    with _LOCK:
        return _JOBS_RUNNING > 0


def worker_threads(total: int) -> int:
    """A worker's share of ``total`` threads beside the main line: half, rounded down, at least
    one (the main line keeps the rest, at least one)."""
    return max(1, total // 2)


def _main_share(total: int) -> int:
    return max(1, total - worker_threads(total))


@contextmanager
def as_worker() -> Iterator[None]:
    """Inside the block, :func:`threads` is a worker's share (:func:`worker_threads`): for work
    that must run with the threads it would have on the worker (the same results whichever line
    of work does it)."""
    token = _WORKER.set(True)
    try:
        yield
    finally:
        _WORKER.reset(token)


@contextmanager
def beside_main() -> Iterator[None]:
    """Run a job of a worker thread (:mod:`clv.background`) beside the main line: inside, the
    job has a worker's share of the threads (:func:`as_worker`) and, for as long, the main line
    the rest (its DuckDB connections opened meanwhile).

    Without the split the main line's DuckDB and BLAS threads and the job's LightGBM threads ask
    for more cores than there are: on 2 CPUs the 1M-customer training took 36 s with both lines
    at two threads, 29.5 s with each at one.
    """
    global _JOBS_RUNNING
    with _LOCK:
        _JOBS_RUNNING += 1
    try:
        with as_worker():
            yield
    finally:
        with _LOCK:
            _JOBS_RUNNING -= 1


@contextmanager
def blas_beside_jobs() -> Iterator[None]:
    """BLAS at the main line's share of the threads for a block in which jobs run beside it
    (:func:`beside_main`). BLAS has one thread pool for the whole process, and resizing it
    while another thread computes is not safe, so the main line caps it once for the block."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=_main_share(_total())):
        yield


#: Training rows per LightGBM thread (:func:`lightgbm_threads`).
ROWS_PER_LIGHTGBM_THREAD = 50_000


def lightgbm_threads(rows: int) -> int:
    """LightGBM threads for ``rows`` training rows: one per :data:`ROWS_PER_LIGHTGBM_THREAD`,
    at least 1, at most :func:`threads`.

    Boosting runs thousands of small parallel steps; on a few ten thousand rows, waking threads
    for each costs more than it saves, and sleeping (passive) threads wake slowly. Measured on
    CDNOW's churn window (23k customers, 2 CPUs): 1 thread 11.0 s quiet and 29.7 s beside four
    busy processes; 2 threads 16.4 s and 44.4 s (passive), 10.3 s and 104 s (spinning). LightGBM
    is deterministic for a given thread count (and grew the same trees at 1 and 2 threads on the
    1M benchmark log): pass ``--threads`` to reproduce a large run on a machine with other CPUs.
    In training the classifier runs beside the main line with half the threads
    (:func:`beside_main`).

    While such a job runs, every LightGBM call of the process, on either line, gets that half,
    whatever its rows: LightGBM keeps one process-wide thread count, which each call sets from its
    ``num_threads``, so a prediction on the main line asking for another count could change it
    under the worker's parallel loops (a segfault in LightGBM 4.7, seen once in a test run).
    """
    if _jobs_running():  # one count for every LightGBM call of the process while a job runs
        return worker_threads(_total())
    return max(1, min(threads(), rows // ROWS_PER_LIGHTGBM_THREAD))


@contextmanager
def limits(configured: int | None = None) -> Iterator[int]:
    """Cap DuckDB, LightGBM and BLAS at ``configured`` threads (default :func:`available_cpus`)
    inside the block; yields the number."""
    from threadpoolctl import threadpool_limits

    n = configured or available_cpus()
    token = _THREADS.set(n)
    try:
        with threadpool_limits(limits=n):
            yield n
    finally:
        _THREADS.reset(token)
