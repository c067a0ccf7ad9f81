"""Every purchase model on every log at hand: holdout forecast scores and fit times.

    python benchmarks/models.py                     # CDNOW sample and full, apparel, simulated
    python benchmarks/models.py --customers 1000000 # the same on bench.py's simulated log

Per log and model: the calibration log-likelihood, the holdout's mean Poisson deviance, RMSE,
MAE and aggregate error of purchases (beside the naive rate: each customer's calibration rate
carried forward), and the median fit time of ``--repeats`` fits. Two simulated logs show what
the newer models are for: a dropout hazard that rises with age (Gamma-Gompertz/NBD, ``b =
0.04`` per week), and regular Erlang-3 purchase timing (MBG/CNBD-k). The grocery log is
BTYDplus' (``tests/data/grocery.csv``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pandas as pd
from simulate import START, simulate, simulate_ggomnbd, simulate_mbgcnbd

from clv.config import DataConfig
from clv.data import clean_transactions, load_transactions
from clv.errors import ModelFitError
from clv.evaluation import naive_rate, purchase_metrics
from clv.features import add_log_gaps, build_calibration_holdout, regularity
from clv.models.fitting import fit_purchase_model
from clv.models.registry import CANDIDATES, display_name

APPAREL = Path(__file__).resolve().parents[2] / "shared" / "data" / "apparel" / "transactions.csv"
#: name → (source, calibration end, observation end); the splits the README and tests use
LOGS = {
    "CDNOW sample": ("cdnow-sample", "1997-09-30", "1998-06-30"),
    "CDNOW full": ("cdnow", "1997-12-31", "1998-06-30"),
    "apparel": (str(APPAREL), "2007-12-31", "2008-12-31"),
    "grocery (BTYDplus)": (
        str(Path(__file__).parents[1] / "tests" / "data" / "grocery.csv"),
        "2006-12-31",
        "2007-12-30",
    ),
}
AGEING = {"r": 0.9, "alpha": 8.0, "b": 0.04, "s": 1.2, "beta": 2.0}
REGULAR = {"k": 3.0, "r": 0.85, "alpha": 1.45, "a": 0.79, "b": 2.42}


def log_split(source: str, cutoff: str, end: str) -> tuple[pd.DataFrame, float]:
    """The calibration/holdout table (with the log gaps MBG/CNBD-k reads) and the log's
    Wheat-Morrison regularity."""
    log = load_transactions(source, DataConfig())
    split = build_calibration_holdout(log.compact, pd.Timestamp(cutoff), pd.Timestamp(end), "week")
    split = add_log_gaps(split, log.compact, pd.Timestamp(cutoff), "week")
    return split, regularity(log.compact, pd.Timestamp(cutoff))["k"]


def score(split: pd.DataFrame, kinds: list[str], repeats: int) -> list[dict]:
    x, t_x, T = (split[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    actual = split["frequency_holdout"].to_numpy(dtype=float)
    horizon = float(split["duration_holdout"].iloc[0])
    rows = [{"model": "naive rate", **purchase_metrics(actual, naive_rate(x, T, horizon))}]
    for kind in kinds:
        times = []
        try:
            for _ in range(repeats):
                start = time.perf_counter()
                model = fit_purchase_model(kind, split, "week")
                times.append(time.perf_counter() - start)
        except ModelFitError as exc:  # e.g. MBG/CNBD-k without the times between purchases
            print(f"{display_name(kind)}: {exc}", file=sys.stderr)
            continue
        predicted = model.expected_purchases(horizon, x, t_x, T)
        rows.append(
            {
                "model": display_name(kind),
                "log_likelihood": getattr(model, "log_likelihood", float("nan")),
                **purchase_metrics(actual, predicted),
                "fit_s": statistics.median(times),
            }
        )
    return rows


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(
        f"{'model':<12} {'LL':>12} {'deviance':>9} {'RMSE':>7} {'MAE':>7} {'agg. err':>9} "
        f"{'fit s':>7}"
    )
    for row in rows:
        deviance = row["poisson_deviance"]
        print(
            f"{row['model']:<12} {row.get('log_likelihood', float('nan')):>12.2f} "
            f"{deviance if deviance is not None else float('inf'):>9.4f} {row['rmse']:>7.4f} "
            f"{row['mae']:>7.4f} {row['aggregate_error_pct']:>+8.2f}% "
            f"{row.get('fit_s', float('nan')):>7.3f}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=0, help="only time a simulated log")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="*", default=list(CANDIDATES))
    args = parser.parse_args(argv)
    if args.customers:  # bench.py's log: BG/NBD customers, purchase days, 39 + 39 weeks
        log = clean_transactions(simulate(args.customers, seed=1), DataConfig())
        cut, end = START + pd.Timedelta(days=272), START + pd.Timedelta(days=545)
        split = build_calibration_holdout(log.compact, cut, end, "week")
        split = add_log_gaps(split, log.compact, cut, "week")
        title = f"simulated BG/NBD log, {args.customers:,} customers (bench.py's)"
        print_table(title, score(split, args.models, args.repeats))
        return
    for name, (source, cutoff, end) in LOGS.items():
        if source == str(APPAREL) and not APPAREL.is_file():
            print(f"\n{name}: skipped ({APPAREL} not found)", file=sys.stderr)
            continue
        split, k = log_split(source, cutoff, end)
        title = (
            f"{name}: {len(split):,} customers, calibration to {cutoff}, holdout to {end}; "
            f"Wheat-Morrison regularity k = {k:.2f}"
        )
        print_table(title, score(split, args.models, args.repeats))
    split = simulate_ggomnbd(20_000, AGEING)
    print_table(
        "simulated GG/NBD (b = 0.04/week), 20,000 customers, 104 + 52 weeks",
        score(split, args.models, args.repeats),
    )
    split = simulate_mbgcnbd(20_000, REGULAR)
    print_table(
        "simulated MBG/CNBD-k (k = 3, BTYDplus' test parameters), 20,000 customers, 104 + 52 weeks",
        score(split, args.models, args.repeats),
    )


if __name__ == "__main__":
    main()
