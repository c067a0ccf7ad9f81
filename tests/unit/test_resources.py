"""Threads sized from the CPUs a process may use, and how OpenMP threads wait in `clv`."""

from __future__ import annotations

import contextvars
import os
import subprocess
import sys
import threading

import pytest

from clv import resources
from clv.cli import openmp_defaults


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
