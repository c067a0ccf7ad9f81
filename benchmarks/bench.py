"""Benchmark each step of clv against the lifetimes equivalent, in the same run.

``python benchmarks/bench.py --customers 1000000 --repeats 3`` simulates a log
(:mod:`simulate`), then times, with medians over ``--repeats`` runs:

- rfm: clv's DuckDB calibration/holdout build vs lifetimes' ``summary_data_from_transaction_data``
  and a plain numpy group-by over the same columns;
- bgnbd / pareto: clv's pattern-weighted fit vs lifetimes' unweighted fit (parameters compared);
- gamma-gamma: clv's fit (exact gradient and Hessian) vs lifetimes' (autograd), same parameters;
- clv 12 months: ``clv.predict.score_rfm`` (all score columns but the intervals, which
  ``benchmarks/intervals.py`` times; 12 months of 365.25/12 days, 1 % per month) vs
  lifetimes' ``customer_lifetime_value`` (12 steps of 4.345 weeks); the values are compared
  where the definitions coincide (clv's pattern path with 4.345-week steps);
- help: ``clv --help`` start-up.

Peak memory is the rise of the process' resident set (sampled every 5 ms) during a step. The
lifetimes Pareto/NBD fit takes minutes at 1M customers: ``--lifetimes-repeats`` (default 1) sets
how often the slow lifetimes steps run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from simulate import START, simulate


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """Median seconds, peak RSS rise (MB) and the last result of ``fn``."""
    times, peaks, result = [], [], None
    for _ in range(repeats):
        base, peak, done = _rss_mb(), [0.0], threading.Event()

        def sample(
            base: float = base, peak: list[float] = peak, done: threading.Event = done
        ) -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _rss_mb() - base)
                time.sleep(0.005)

        watcher = threading.Thread(target=sample, daemon=True)
        watcher.start()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        done.set()
        watcher.join()
        peaks.append(peak[0])
    return statistics.median(times), max(peaks), result


def numpy_rfm(
    customer: np.ndarray, day: np.ndarray, amount: np.ndarray, end: int
) -> dict[str, np.ndarray]:
    """The same per-customer aggregates with a plain numpy group-by (already same-day merged)."""
    order = np.lexsort((day, customer))
    c, d, a = customer[order], day[order], amount[order]
    starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
    counts = np.diff(np.r_[starts, c.size])
    first = d[starts]
    last = np.maximum.reduceat(d, starts)
    total = np.add.reduceat(a, starts)
    repeat_mean = np.where(counts > 1, (total - a[starts]) / np.maximum(counts - 1, 1), 0.0)
    return {
        "frequency": counts - 1,
        "recency": (last - first) / 7,
        "T": (end - first) / 7,
        "monetary_value": repeat_mean,
    }


def main(
    customers: int, repeats: int, lifetimes_repeats: int, rfm_only: bool = False
) -> list[dict[str, Any]]:
    """Run every step; return the table rows."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifetimes import BetaGeoFitter, GammaGammaFitter, ParetoNBDFitter
        from lifetimes.utils import summary_data_from_transaction_data
    from clv.bundle import Bundle
    from clv.config import DataConfig
    from clv.data import clean_transactions
    from clv.features import build_calibration_holdout
    from clv.models.fitting import fit_purchase_model
    from clv.models.gamma_gamma import fit_spend_model
    from clv.models.patterns import rfm_patterns_index
    from clv.predict import score_rfm
    from clv.value import discounted_purchases

    raw = simulate(customers, seed=1)
    log = clean_transactions(raw, DataConfig())
    tx = log.frame
    cut, end = START + pd.Timedelta(days=272), START + pd.Timedelta(days=545)
    rows = []

    def row(step: str, ours: tuple, theirs: tuple | None, **extra: Any) -> None:
        rows.append(
            {
                "step": step,
                "clv_s": ours[0],
                "clv_peak_mb": ours[1],
                "lifetimes_s": theirs[0] if theirs else np.nan,
                "lifetimes_peak_mb": theirs[1] if theirs else np.nan,
                "speedup": theirs[0] / ours[0] if theirs else np.nan,
                **extra,
            }
        )

    # clv builds features from the compact log (int32 codes, day numbers): so does the numpy
    # group-by it is compared with; lifetimes takes the frame of dates
    ours = measure(lambda: build_calibration_holdout(log.compact, cut, end, "week"), repeats)
    lt_raw = tx.assign(customer_id=tx["customer_id"].astype("int64"))
    theirs = measure(
        lambda: summary_data_from_transaction_data(
            lt_raw,
            "customer_id",
            "date",
            monetary_value_col="amount",
            observation_period_end=end,
            freq="D",
        ),
        repeats,
    )
    day = ((tx["date"] - START).dt.days).to_numpy()
    cust = tx["customer_id"].astype("int64").to_numpy()
    amount = tx["amount"].to_numpy()
    base = measure(lambda: numpy_rfm(cust, day, amount, 545), repeats)
    row("rfm (calibration/holdout)", ours, theirs, numpy_s=base[0], vs_numpy=ours[0] / base[0])
    if rfm_only:
        return rows
    cal = ours[2]

    for kind, cls in (("bgnbd", BetaGeoFitter), ("pareto", ParetoNBDFitter)):
        ours = measure(lambda kind=kind: fit_purchase_model(kind, cal, "week"), repeats)

        def plain(cls: Any = cls, kind: str = kind) -> Any:
            fitter = cls()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if kind == "pareto":
                    return fitter.fit(
                        cal["frequency"],
                        cal["recency"],
                        cal["T"],
                        initial_params=np.ones(4),
                        tol=1e-8,
                        maxiter=10_000,
                    )
                return fitter.fit(cal["frequency"], cal["recency"], cal["T"])

        theirs = measure(plain, lifetimes_repeats)
        rel = max(abs(ours[2].params[k] / v - 1) for k, v in theirs[2].params_.items())
        row(f"{kind} fit", ours, theirs, max_param_rel_diff=rel)

    ours = measure(lambda: fit_spend_model(cal), repeats)
    repeat_buyers = cal[(cal["frequency"] > 0) & (cal["monetary_value"] > 0)]

    def plain_spend() -> Any:
        fitter = GammaGammaFitter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fitter.fit(repeat_buyers["frequency"], repeat_buyers["monetary_value"])

    theirs = measure(plain_spend, lifetimes_repeats)
    rel = max(abs(ours[2].params[k] / v - 1) for k, v in theirs[2].params_.items())
    row("gamma-gamma fit", ours, theirs, max_param_rel_diff=rel)

    purchase = fit_purchase_model("bgnbd", cal, "week")
    spend = ours[2]
    x, m = (cal[c].to_numpy(dtype=float) for c in ("frequency", "monetary_value"))

    def ours_clv() -> np.ndarray:
        """lifetimes' definition (4.345-week steps) on clv's pattern path: the equality check."""
        patterns, inverse = rfm_patterns_index(cal)
        px, pr, pT = patterns.T
        disc = discounted_purchases(
            lambda s: purchase.expected_purchases(s, px, pr, pT),
            12,
            step_length=4.345,
            discount_rate=0.01,
        )
        return disc[inverse] * spend.expected_average_value(x, m)

    bundle = Bundle(purchase, spend, {}, {})
    bgf, ggf = BetaGeoFitter(), GammaGammaFitter()
    bgf.params_ = pd.Series(purchase.params)
    bgf.predict = bgf.conditional_expected_number_of_purchases_up_to_time
    ggf.params_ = pd.Series(spend.params)
    same = ours_clv()
    ours = measure(
        lambda: score_rfm(bundle, cal, 12, "month", discount_rate=0.01, interval=0), repeats
    )
    theirs = measure(
        lambda: ggf.customer_lifetime_value(
            bgf,
            cal["frequency"],
            cal["recency"],
            cal["T"],
            cal["monetary_value"],
            time=12,
            discount_rate=0.01,
            freq="W",
        ).to_numpy(),
        lifetimes_repeats,
    )
    diff = float(np.max(np.abs(same - theirs[2]) / np.maximum(np.abs(theirs[2]), 1e-12)))
    row("clv 12 months", ours, theirs, customers_per_s=customers / ours[0], max_rel_diff=diff)

    help_times = []
    for _ in range(max(repeats, 3)):
        start = time.perf_counter()
        subprocess.run(["clv", "--help"], capture_output=True, check=True)
        help_times.append(time.perf_counter() - start)
    rows.append({"step": "clv --help", "clv_s": statistics.median(help_times)})
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lifetimes-repeats", type=int, default=1)
    parser.add_argument("--rfm-only", action="store_true", help="stop after the RFM step")
    args = parser.parse_args()
    table = pd.DataFrame(main(args.customers, args.repeats, args.lifetimes_repeats, args.rfm_only))
    with pd.option_context(
        "display.width", 200, "display.max_columns", 20, "display.float_format", "{:,.4g}".format
    ):
        print(
            f"{args.customers:,} customers; medians over {args.repeats} runs "
            f"(lifetimes' slow steps over {args.lifetimes_repeats})"
        )
        print(table.to_string(index=False))
