"""Threads sized from the CPUs a process may use, and how OpenMP threads wait in `clv`."""

from __future__ import annotations

import contextvars
import os
import subprocess
import sys
import threading

import pytest

from clv import resources
from clv.cli import allocator_defaults, openmp_defaults


def test_openmp_threads_sleep_while_they_wait_unless_the_user_chose():
    assert openmp_defaults({}) == {"OMP_WAIT_POLICY": "PASSIVE"}
    # a user's choice of either variable wins
    assert openmp_defaults({"OMP_WAIT_POLICY": "ACTIVE"}) == {}
    assert openmp_defaults({"GOMP_SPINCOUNT": "0"}) == {}


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ({}, "PASSIVE None"),
        ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE None"),
        ({"GOMP_SPINCOUNT": "250"}, "None 250"),
    ],
)
def test_the_clv_process_sets_them_before_the_command_runs(user, expected):
    """The real entry point, in its own process; only the Typer app is replaced by a probe that
    prints what the command would see."""
    code = (
        "import os, clv.cli as c\n"
        "c.app = lambda: print(os.environ.get('OMP_WAIT_POLICY'), "
        "os.environ.get('GOMP_SPINCOUNT'))\n"
        "c.main()\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run(
        [sys.executable, "-c", code], env={**env, **user}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected


def test_arrow_uses_jemalloc_in_clv_on_linux_unless_the_user_chose():
    assert allocator_defaults("linux") == {"ARROW_DEFAULT_MEMORY_POOL": "jemalloc"}
    assert allocator_defaults("darwin") == allocator_defaults("win32") == {}


_ARROW_PROBE = """
import os, time, clv.cli as c

def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) / 1e3 for l in f if l.startswith("VmRSS"))

def probe():
    import numpy as np, pyarrow as pa, pyarrow.compute as pc
    column = pa.array(np.arange(40_000_000))  # 320 MB, numpy's memory
    base = rss_mb()
    # 40 Arrow buffers of 8 MB (a DuckDB result's batches), joined, then all let go
    parts = [pc.add(column.slice(i, 1_000_000), 1) for i in range(0, 40_000_000, 1_000_000)]
    joined = pa.concat_arrays(parts)
    del parts
    held = rss_mb()
    del joined
    for _ in range(50):  # jemalloc returns freed pages after about a second
        time.sleep(0.1)
        if rss_mb() - base < 100:
            break
    print(pa.default_memory_pool().backend_name, round(held - base), round(rss_mb() - base))

c.app = probe
c.main()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="jemalloc is chosen on Linux")
def test_memory_of_freed_arrow_buffers_goes_back_to_the_system_in_clv():
    """The real entry point in its own process: 640 MB of Arrow buffers, freed, leave the
    process's resident memory within 100 MB of where it was (pyarrow's default, mimalloc, kept
    them: 1 GB through a whole training of 100M rows; here the same probe leaves 640 MB)"""
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    out = subprocess.run(
        [sys.executable, "-c", _ARROW_PROBE], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    backend, held, left = out.stdout.split()
    assert backend == "jemalloc"
    assert int(held) > 250  # the joined 320 MB were resident
    assert int(left) < 100


def test_a_users_choice_of_arrow_allocator_wins():
    code = "import os, clv.cli as c\nc.app = lambda: print(os.environ['ARROW_DEFAULT_MEMORY_POOL'])\nc.main()\n"
    env = {**os.environ, "ARROW_DEFAULT_MEMORY_POOL": "system"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "system"


def test_threads_come_from_the_cpus_the_process_may_use():
    cpus = resources.available_cpus()
    assert 1 <= cpus <= len(os.sched_getaffinity(0))
    assert resources.threads() == cpus
    with resources.limits(1) as n:
        assert n == 1 and resources.threads() == 1
        assert resources.lightgbm_threads(10**9) == 1
    assert resources.threads() == cpus  # put back after the block


def test_lightgbm_gets_one_thread_per_50k_training_rows():
    with resources.limits(8):
        assert resources.lightgbm_threads(10) == 1
        assert resources.lightgbm_threads(149_999) == 2
        assert resources.lightgbm_threads(10**7) == 8


def _threads_on_another_thread(context: contextvars.Context) -> int:
    seen: list[int] = []
    other = threading.Thread(target=context.run, args=(lambda: seen.append(resources.threads()),))
    other.start()
    other.join()
    return seen[0]


def test_a_job_beside_the_main_line_and_the_main_line_split_the_threads():
    with resources.limits(4):
        with resources.as_worker():
            assert resources.threads() == 2
            assert resources.lightgbm_threads(10**7) == 2
        assert resources.threads() == 4
    for total, job, rest in [(1, 1, 1), (2, 1, 1), (3, 1, 2), (4, 2, 2), (8, 4, 4)]:
        with resources.limits(total):
            main_line = contextvars.copy_context()
            seen: list[int] = []
            with resources.beside_main():  # as a job does, on its worker thread
                seen.append(resources.threads())
                # another line of work (the main line), meanwhile, has the rest
                seen.append(_threads_on_another_thread(main_line))
            seen.append(resources.threads())  # and all of them once no job runs
            assert seen == [job, rest, total]
        with resources.limits(total), resources.beside_main():
            # LightGBM's thread count is process-wide: one count for every call while a job
            # runs, however many rows (else a call could change it under another's loops)
            assert resources.lightgbm_threads(10) == resources.lightgbm_threads(10**7) == job
            counts = {main_line.run(resources.lightgbm_threads, n) for n in (10, 10**7)}
            assert counts == {job}
            assert resources.worker_threads(total) == job


def test_blas_runs_at_the_main_lines_share_beside_jobs():
    from threadpoolctl import threadpool_info

    blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
    if not blas:
        pytest.skip("no BLAS library loaded by numpy")
    with resources.limits(4):
        with resources.blas_beside_jobs():
            assert {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"} == {2}
        assert {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"} == {4}
