"""The local engine (pandas + DuckDB) against Spark (``--engine spark``, local[2]) on the same log.

    python benchmarks/engines.py                                  # 1M and 10M customers
    python benchmarks/engines.py --customers 1000000 --train-max 1000000

For each size the simulator (:mod:`simulate`) writes one Parquet log; then, as a user runs them,
``clv prepare`` (clean the log, build RFM and the calibration/holdout table) and, up to
``--train-max`` customers, ``clv train --no-mlflow`` run with each engine: wall time, and the
peak of the resident memory summed over the command's whole process tree (for Spark: the Python
driver, the JVM and its Python workers; sampled every 0.2 s from ``/proc``). Spark's figures
include starting its JVM (about 10 s). The ``Read and cleaned`` stage line of the trainings
gives the cleaning's share.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from scaling import stages
from simulate import write_parquet


def _tree(pid: int) -> list[int]:
    """A process and all its descendants (Linux ``/proc/<pid>/task/*/children``)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return found


def _rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def timed(command: list[str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS of the process tree (MB) and stdout of one command."""
    env = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true", "COLUMNS": "200"}
    start = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak, done = [0.0], threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], _rss_mb(_tree(process.pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{out[-2000:]}\n{err[-3000:]}")
    return wall, peak[0], out


ENGINES = ("local", "spark")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--train-max", type=int, default=1_000_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--commands", nargs="+", default=["prepare", "train"])
    args = parser.parse_args(argv)
    rows = []
    for n in args.customers:
        with tempfile.TemporaryDirectory() as folder:
            work = Path(folder)
            log = work / "log.parquet"
            transactions = write_parquet(log, n, seed=1)
            print(f"\n{n:,} customers, {transactions:,} transactions", flush=True)
            for engine in args.engines:
                common = ["-t", str(log), "--engine", engine, "--spark-master", args.master]
                if "prepare" in args.commands:
                    out = work / f"prepared-{engine}"
                    wall, peak, _ = timed(["clv", "prepare", *common, "--out", str(out)], work)
                    rows.append((n, transactions, "prepare", engine, wall, peak, None))
                    print(f"  prepare {engine}: {wall:.1f} s, {peak:,.0f} MB", flush=True)
                if n > args.train_max or "train" not in args.commands:
                    continue
                model = ["--model-dir", str(work / f"model-{engine}"), "--no-mlflow"]
                wall, peak, output = timed(["clv", "train", *common, *model], work)
                read = next((at for at, text in stages(output) if "cleaned" in text), None)
                rows.append((n, transactions, "train", engine, wall, peak, read))
                print(f"  train {engine}: {wall:.1f} s, {peak:,.0f} MB (read {read} s)", flush=True)
    print("\ncustomers | transactions | command | engine | wall s | peak MB | read+clean s")
    for n, transactions, command, engine, wall, peak, read in rows:
        cleaned = f"{read:.1f}" if read is not None else "–"
        figures = f"{wall:.1f} | {peak:,.0f} | {cleaned}"
        print(f"{n:,} | {transactions:,} | {command} | {engine} | {figures}")


if __name__ == "__main__":
    main()
