"""How `clv train` and `clv score` grow with the log: wall time, peak memory and the stages.

    python benchmarks/scaling.py                       # 10k, 100k, 1M customers
    python benchmarks/scaling.py --customers 10000 10000000
    python benchmarks/scaling.py --customers 1000000 --repeats 3   # medians of 3
    python benchmarks/scaling.py --customers 1000000 --again       # and a retraining

For each size the simulator (:mod:`simulate`, BG/NBD + Gamma-Gamma at the CDNOW parameters,
about 2.8 transactions per customer) writes a Parquet log; then the whole commands run as a user
runs them — `clv train` with MLflow on a fresh sqlite store, then `clv score` of that bundle —
under ``/usr/bin/time -v`` for the peak resident memory. The stage lines `clv train` prints
(``[   12.3 s] ...``) give where its time went. With ``--repeats N`` each size runs N times (a
fresh store and folder each time) and the table gives medians; the stages shown are those of the
median training.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from simulate import write_parquet

STAGE = re.compile(r"^\[\s*([\d.]+) s\] (.*)$")
PEAK = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")
WALL = re.compile(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)")


def timed(command: list[str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) and stdout of one command under ``/usr/bin/time -v``."""
    env = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true", "COLUMNS": "200"}
    done = subprocess.run(
        ["/usr/bin/time", "-v", *command], cwd=cwd, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    hours, minutes, seconds = WALL.search(done.stderr).groups()
    wall = int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
    return wall, int(PEAK.search(done.stderr).group(1)) / 1024, done.stdout


def stages(output: str) -> list[tuple[float, str]]:
    """The (seconds since start, text) stage lines of a `clv train` output."""
    return [(float(m[1]), m[2]) for line in output.splitlines() if (m := STAGE.match(line))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--again",
        action="store_true",
        help="also time a second `clv train` into the same store (a retraining: no new tables)",
    )
    args = parser.parse_args(argv)
    rows = []
    for n in args.customers:
        with tempfile.TemporaryDirectory() as folder:
            log = Path(folder) / "log.parquet"
            transactions = write_parquet(log, n, seed=1)
            trains, scores, retrains = [], [], []
            for i in range(args.repeats):
                work = Path(folder) / f"run{i}"
                work.mkdir()
                store = f"sqlite:///{work / 'mlflow.db'}"
                common = ["-t", str(log), "--tracking-uri", store]
                trains.append(timed(["clv", "train", *common, "--model-dir", "m"], work))
                scores.append(timed(["clv", "score", *common, "-m", "m", "-o", "s.parquet"], work))
                if args.again:
                    retrains.append(timed(["clv", "train", *common, "--model-dir", "m"], work))
            train, score = _median(trains), _median(scores)
            if retrains:
                again = _median(retrains)
                runs = ", ".join(f"{t[0]:.1f} s" for t in retrains)
                print(f"\nretraining into the same store: {again[0]:.1f} s ({runs}), ", end="")
                print(f"{again[1]:,.0f} MB")
            rows.append((n, transactions, train, score))
            if args.repeats > 1:
                print(f"\ntrain runs: {', '.join(f'{t[0]:.1f} s' for t in trains)}")
            print(f"\n{n:,} customers, {transactions:,} transactions")
            previous = 0.0
            for at, text in stages(train[2]):
                print(f"  {at - previous:7.1f} s  {text[:110]}")
                previous = at
            print(
                f"  train {train[0]:.1f} s, {train[1]:,.0f} MB; score {score[0]:.1f} s, "
                f"{score[1]:,.0f} MB",
                flush=True,
            )
    print("\ncustomers | transactions | train s | train MB | score s | score MB")
    for n, transactions, train, score in rows:
        print(
            f"{n:,} | {transactions:,} | {train[0]:.1f} | {train[1]:,.0f} | {score[0]:.1f} | "
            f"{score[1]:,.0f}"
        )


def _median(runs: list[tuple[float, float, str]]) -> tuple[float, float, str]:
    """The run of median wall time, with the median peak memory of all runs."""
    middle = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
    return middle[0], statistics.median(r[1] for r in runs), middle[2]


if __name__ == "__main__":
    main()
