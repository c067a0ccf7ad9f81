"""`clv train` alone and beside busy processes: does a shared machine make it collapse?

``python benchmarks/contention.py`` trains on CDNOW (``--no-mlflow``, a fresh folder each time)
with the machine quiet, then beside N processes that each keep one core busy
(``python -c "while True: pass"``) for N = cores and N = 2 × cores, and prints the wall times
and their ratio to the quiet run (fair share is 2–3× at N = 2 × cores). A run slower than
``--limit`` seconds is stopped and shown as ``inf``.

``--variant NAME:KEY=VALUE,...`` (repeatable) adds the same runs with those environment variables
set, for a comparison in one session, e.g. ``--variant "short spin:GOMP_SPINCOUNT=10000"`` (a
user's ``GOMP_SPINCOUNT`` replaces clv's ``OMP_WAIT_POLICY=PASSIVE``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from clv.resources import available_cpus

BUSY = [sys.executable, "-c", "while True: pass"]


def train_seconds(env: dict[str, str], limit: float, transactions: str) -> float:
    """Wall seconds of one ``clv train --no-mlflow``; ``inf`` when it passes ``limit``."""
    with tempfile.TemporaryDirectory() as folder:
        command = ["clv", "train", "-t", transactions, "--no-mlflow", "--model-dir", "m"]
        start = time.perf_counter()
        try:
            subprocess.run(
                command, cwd=folder, env=env, check=True, capture_output=True, timeout=limit
            )
        except subprocess.TimeoutExpired:
            return float("inf")
        return time.perf_counter() - start


def beside(busy: int, env: dict[str, str], limit: float, transactions: str) -> float:
    """:func:`train_seconds` while ``busy`` processes each spin on a core."""
    spinners = [subprocess.Popen(BUSY) for _ in range(busy)]
    try:
        time.sleep(0.5)
        return train_seconds(env, limit, transactions)
    finally:
        for p in spinners:
            p.kill()
            p.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", default="cdnow")
    parser.add_argument("--limit", type=float, default=180.0)
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE,...")
    args = parser.parse_args()
    cores = available_cpus()
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")  # clv's own choice unless a variant's
    }
    base["MLFLOW_DISABLE_TELEMETRY"] = "true"
    variants = {"clv's default": base}
    for spec in args.variant:
        name, _, assignments = spec.partition(":")
        pairs = (item.split("=", 1) for item in assignments.split(",") if item)
        variants[name] = {**base, **dict(pairs)}
    log, limit = args.transactions, args.limit
    print(f"clv train on {log}, {cores} CPUs available")
    print(f"{'run':28} {'busy':>5} {'seconds':>8} {'× quiet':>8}")
    for name, env in variants.items():
        quiet = train_seconds(env, limit, log)
        for busy in (0, cores, 2 * cores):
            seconds = quiet if busy == 0 else beside(busy, env, limit, log)
            print(f"{name:28} {busy:5d} {seconds:8.1f} {seconds / quiet:8.2f}", flush=True)


if __name__ == "__main__":
    main()
