"""What the predictive intervals add to scoring: ``score_rfm`` with and without them on a
simulated log (BG/NBD and Gamma-Gamma at the CDNOW parameters), median of repeats, same run,
and the peak of memory allocated during one call of each (tracemalloc, which sees numpy's
buffers).

``python benchmarks/intervals.py --customers 1000000``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from simulate import simulate


def main(customers: int, repeats: int) -> None:
    from clv.bundle import Bundle
    from clv.data.compact import compact
    from clv.features import build_rfm
    from clv.models.fitting import fit_purchase_model
    from clv.models.gamma_gamma import fit_spend_model

    log = simulate(customers)
    log_view = compact(log)
    end = pd.Timestamp(log["date"].max()).normalize()
    rfm = build_rfm(log_view, end, "week")
    purchase = fit_purchase_model("bgnbd", rfm, "week")
    spend = fit_spend_model(rfm)
    bundle = Bundle(purchase=purchase, spend=spend, config={}, fingerprint={})
    from clv.predict import score_rfm

    warnings.simplefilter("ignore")  # the bare bundle has no stored segment thresholds
    times, peaks = {}, {}
    for level in (0.0, 0.8):
        runs = []
        for _ in range(repeats):
            started = time.perf_counter()
            score_rfm(bundle, rfm, 52.0, interval=level)
            runs.append(time.perf_counter() - started)
        times[level] = statistics.median(runs)
        tracemalloc.start()
        score_rfm(bundle, rfm, 52.0, interval=level)
        peaks[level] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    print(
        f"{customers:,} customers, {len(rfm[['frequency', 'recency', 'T']].drop_duplicates()):,}"
        f" patterns: score_rfm {times[0.0]:.2f} s without intervals, {times[0.8]:.2f} s with "
        f"(+{times[0.8] - times[0.0]:.2f} s, ×{times[0.8] / times[0.0]:.2f}), median of {repeats}; "
        f"peak allocated {peaks[0.0]:,.0f} MiB without, {peaks[0.8]:,.0f} MiB with"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    np.seterr(all="ignore")
    main(args.customers, args.repeats)
