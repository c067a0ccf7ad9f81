"""Threads sized from the CPUs a process may use, and how OpenMP threads wait in `clv`."""

from __future__ import annotations

import os
import subprocess
import sys

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


def test_a_job_beside_the_main_line_leaves_it_a_thread():
    with resources.limits(4):
        with resources.reserved(1):
            assert resources.threads() == 3
            assert resources.lightgbm_threads(10**7) == 3
            with resources.reserved(5):
                assert resources.threads() == 1  # never below one
        assert resources.threads() == 4
