"""How `clv train` and `clv score` grow with the log: wall time, peak memory and the stages.

    python benchmarks/scaling.py                       # 10k, 100k, 1M customers
    python benchmarks/scaling.py --customers 10000 10000000
    python benchmarks/scaling.py --customers 1000000 --repeats 3   # medians of 3
    python benchmarks/scaling.py --customers 1000000 --again       # and a retraining
    python benchmarks/scaling.py --log big.parquet --repeats 3 --baseline ../before

For each size the simulator (:mod:`simulate`, BG/NBD + Gamma-Gamma at the CDNOW parameters,
about 2.8 transactions per customer) writes a Parquet log; then the whole commands run as a user
runs them — `clv train` with MLflow on a fresh sqlite store, then `clv score` of that bundle —
under ``/usr/bin/time -v`` for the peak resident memory. The stage lines `clv train` prints
(``[   12.3 s] ...``) give where its time went. With ``--repeats N`` each size runs N times (a
fresh store and folder each time) and the table gives medians; the stages shown are those of the
median training.

``--log`` times an existing Parquet log instead (e.g. the simulator's 5.5M customers, 100M
transactions). ``--baseline DIR`` also times the code of another checkout (``DIR/src`` first on
``PYTHONPATH``, e.g. a ``git worktree`` of an earlier commit), alternating with this checkout's
run by run so that both see the same machine, and prints both medians and their ratio.
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


def timed(command: list[str], cwd: Path, src: Path | None = None) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) and stdout of one command under ``/usr/bin/time -v``
    (with the package of ``src`` first on ``PYTHONPATH`` when given)."""
    env = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true", "COLUMNS": "200"}
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
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
    parser.add_argument("--log", type=Path, help="time this Parquet log (no simulated ones)")
    parser.add_argument(
        "--baseline", type=Path, help="a checkout whose code is timed too, run by run in turn"
    )
    args = parser.parse_args(argv)
    baseline = args.baseline.resolve() / "src" if args.baseline else None
    if baseline is not None and not (baseline / "clv").is_dir():
        sys.exit(f"{baseline} holds no clv package")
    codes = {"now": None} if baseline is None else {"baseline": baseline, "now": None}
    rows = []
    for n in [None] if args.log else args.customers:
        with tempfile.TemporaryDirectory() as folder:
            log = args.log.resolve() if args.log else Path(folder) / "log.parquet"
            transactions = _rows(log) if args.log else write_parquet(log, n, seed=1)
            label = log.name if args.log else f"{n:,} customers"
            runs = _time_runs(log, codes, args.repeats, args.again, Path(folder))
            for code, found in runs.items():
                name = f"{label} ({code})" if baseline else label
                rows.append((name, transactions, _median(found["train"]), _median(found["score"])))
                _print_runs(name, transactions, found)
            if baseline is not None:
                for command in ("train", "score"):
                    now, before = (_median(runs[c][command])[0] for c in ("now", "baseline"))
                    print(
                        f"{command}: now {now:.1f} s / baseline {before:.1f} s = {now / before:.2f}"
                    )
    print("\nlog | transactions | train s | train MB | score s | score MB")
    for name, transactions, train, score in rows:
        print(
            f"{name} | {transactions:,} | {train[0]:.1f} | {train[1]:,.0f} | {score[0]:.1f} | "
            f"{score[1]:,.0f}"
        )


def _time_runs(
    log: Path, codes: dict[str, Path | None], repeats: int, again: bool, folder: Path
) -> dict[str, dict[str, list]]:
    """``clv train`` and ``clv score`` of ``log`` ``repeats`` times for each code (its ``src``
    folder, None for this checkout), the codes in turn so that both see the same machine; a
    fresh store and model folder each time."""
    runs: dict[str, dict[str, list]] = {c: {"train": [], "score": [], "again": []} for c in codes}
    for i in range(repeats):
        for code, src in codes.items():
            work = folder / f"{code}{i}"
            work.mkdir()
            common = ["-t", str(log), "--tracking-uri", f"sqlite:///{work / 'mlflow.db'}"]
            train = ["clv", "train", *common, "--model-dir", "m"]
            runs[code]["train"].append(timed(train, work, src))
            score = ["clv", "score", *common, "-m", "m", "-o", "s.parquet"]
            runs[code]["score"].append(timed(score, work, src))
            if again:
                runs[code]["again"].append(timed(train, work, src))
    return runs


def _rows(log: Path) -> int:
    """Rows of a Parquet log (from its footer)."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(log).metadata.num_rows


def _print_runs(label: str, transactions: int, runs: dict[str, list]) -> None:
    """The runs of one log and code: each run's time, then the median training's stages."""
    train, score = _median(runs["train"]), _median(runs["score"])
    if runs["again"]:
        again = _median(runs["again"])
        times = ", ".join(f"{t[0]:.1f} s" for t in runs["again"])
        print(f"\nretraining into the same store: {again[0]:.1f} s ({times}), {again[1]:,.0f} MB")
    if len(runs["train"]) > 1:
        print(f"\ntrain runs: {', '.join(f'{t[0]:.1f} s' for t in runs['train'])}")
        print(f"score runs: {', '.join(f'{t[0]:.1f} s' for t in runs['score'])}")
    print(f"\n{label}, {transactions:,} transactions")
    previous = 0.0
    for at, text in stages(train[2]):
        print(f"  {at - previous:7.1f} s  {text[:110]}")
        previous = at
    print(
        f"  train {train[0]:.1f} s, {train[1]:,.0f} MB; score {score[0]:.1f} s, {score[1]:,.0f} MB",
        flush=True,
    )


def _median(runs: list[tuple[float, float, str]]) -> tuple[float, float, str]:
    """The run of median wall time, with the median peak memory of all runs."""
    middle = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
    return middle[0], statistics.median(r[1] for r in runs), middle[2]


if __name__ == "__main__":
    main()
