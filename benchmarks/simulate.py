"""Vectorized simulator of transaction logs from known BG/NBD and Gamma-Gamma parameters (and
calibration/holdout tables of Gamma-Gompertz/NBD and MBG/CNBD-k customers:
:func:`simulate_ggomnbd`, :func:`simulate_mbgcnbd`).

Each customer makes a first purchase on a uniformly drawn day of the acquisition window, then
purchases at rate λ ~ Gamma(r, α) per week and, after each repeat purchase, drops out with
probability p ~ Beta(a, b) (BG/NBD); each purchase's amount is Gamma(p_gg, ν) with ν ~ Gamma(q, γ)
(Gamma-Gamma). The loop runs over purchase rounds for all still-active customers at once — no
per-customer Python loop. Times are continuous and then floored to days.

``python benchmarks/simulate.py --customers 1000000 --out sim.parquet`` writes Parquet in chunks
of customers, so logs larger than memory can be made.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # FHL 2005, CDNOW, weeks
GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "v": 15.44}  # Fader & Hardie 2013, CDNOW
START = pd.Timestamp("2020-01-01")


def simulate_times(
    customers: int,
    days: int = 546,
    acquisition_days: int = 84,
    bgnbd: dict[str, float] | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Purchase times (continuous, in days) of ``customers`` BG/NBD customers.

    Returns the customer index and the time of every purchase (first ones included).
    """
    bg = bgnbd or BGNBD
    rng = np.random.default_rng(seed)
    lam = rng.gamma(bg["r"], 1.0 / bg["alpha"], customers) / 7.0  # per day
    drop = rng.beta(bg["a"], bg["b"], customers)
    first = rng.uniform(0, acquisition_days, customers)
    owners, times = [np.arange(customers)], [first]
    active, clock = np.arange(customers), first.copy()
    while active.size:
        now = clock + rng.exponential(1.0, active.size) / np.maximum(lam[active], 1e-12)
        keep = now < days
        active, clock = active[keep], now[keep]
        owners.append(active)
        times.append(clock)
        alive = rng.random(active.size) >= drop[active]  # BG/NBD: dropout after a repeat purchase
        active, clock = active[alive], clock[alive]
    return np.concatenate(owners), np.concatenate(times)


def simulate(
    customers: int,
    days: int = 546,
    acquisition_days: int = 84,
    bgnbd: dict[str, float] | None = None,
    gamma_gamma: dict[str, float] | None = None,
    seed: int = 0,
    first_id: int = 0,
) -> pd.DataFrame:
    """Simulate a log of ``customers`` over ``days`` days.

    Returns
    -------
    pandas.DataFrame
        ``customer_id`` (int64), ``date`` (datetime64, day), ``amount`` (float64).
    """
    gg = gamma_gamma or GAMMA_GAMMA
    owner, time = simulate_times(customers, days, acquisition_days, bgnbd, seed)
    rng = np.random.default_rng(seed + 1_000_003)
    nu = rng.gamma(gg["q"], 1.0 / gg["v"], customers)
    day = np.floor(time).astype("int64")
    amount = rng.gamma(gg["p"], 1.0, owner.size) / nu[owner]
    order = np.lexsort((day, owner))
    return pd.DataFrame(
        {
            "customer_id": owner[order] + first_id,
            "date": START + pd.to_timedelta(day[order], unit="D"),
            "amount": np.round(amount[order], 2),
        }
    )


def simulate_ggomnbd(customers: int, params: dict[str, float], seed: int = 3) -> pd.DataFrame:
    """Calibration/holdout table (``frequency, recency, T, frequency_holdout,
    duration_holdout``) of Gamma-Gompertz/NBD customers acquired over a year, observed to week
    104, holdout 52 weeks; times exact, in weeks, not floored to days.

    λ ~ Gamma(r, α) per week, η ~ Gamma(s, β), lifetime ``log(1 + E/η) / b`` with E ~ Exp(1)
    (Gompertz: ``S(t) = e^(−η(e^(bt) − 1))``). Given x purchases in the time seen, their times
    are uniform, so the last one is that time · U^(1/x).
    """
    rng = np.random.default_rng(seed)
    r, alpha, b, s, beta = (params[k] for k in ("r", "alpha", "b", "s", "beta"))
    T = 104.0 - rng.uniform(0.0, 52.0, customers)
    lam = rng.gamma(r, 1.0 / alpha, customers)
    eta = rng.gamma(s, 1.0 / beta, customers)
    life = np.log1p(rng.exponential(1.0, customers) / eta) / b
    seen = np.minimum(life, T)
    x = rng.poisson(lam * seen)
    t_x = np.where(x > 0, seen * rng.uniform(size=customers) ** (1.0 / np.maximum(x, 1)), 0.0)
    holdout = rng.poisson(lam * np.clip(life - T, 0.0, 52.0))
    return pd.DataFrame(
        {
            "frequency": x.astype(float),
            "recency": t_x,
            "T": T,
            "frequency_holdout": holdout.astype(float),
            "duration_holdout": 52.0,
        }
    )


def simulate_mbgcnbd(
    customers: int, params: dict[str, float], seed: int = 5, holdout: float = 52.0
) -> pd.DataFrame:
    """Calibration/holdout table (``frequency, recency, T, log_gap_sum, frequency_holdout,
    duration_holdout``) of MBG/CNBD-k customers acquired over a year and observed to week 104.

    λ ~ Gamma(r, α) per week, p ~ Beta(a, b); after each purchase, the first included, a
    customer drops out with probability p, else buys again after an Erlang-k(λ) time. Times
    exact, in weeks.
    """
    rng = np.random.default_rng(seed)
    k, r, alpha, a, b = (params[n] for n in ("k", "r", "alpha", "a", "b"))
    T = 104.0 - rng.uniform(0.0, 52.0, customers)
    lam = rng.gamma(r, 1.0 / alpha, customers)
    p = rng.beta(a, b, customers)
    x = np.zeros(customers)
    t_x = np.zeros(customers)
    log_gaps = np.zeros(customers)
    later = np.zeros(customers)
    clock = np.zeros(customers)
    active = np.arange(customers)
    while active.size:
        active = active[rng.random(active.size) >= p[active]]  # survives the last purchase
        gap = rng.gamma(int(k), 1.0 / lam[active])
        clock[active] += gap
        now = clock[active]
        inside = now <= T[active]
        seen = active[inside]
        x[seen] += 1
        t_x[seen] = now[inside]
        log_gaps[seen] += np.log(gap[inside])
        ahead = now <= T[active] + holdout
        later[active[~inside & ahead]] += 1
        active = active[ahead]
    return pd.DataFrame(
        {
            "frequency": x,
            "recency": t_x,
            "T": T,
            "log_gap_sum": log_gaps,
            "frequency_holdout": later,
            "duration_holdout": holdout,
        }
    )


def write_parquet(
    path: Path, customers: int, chunk: int = 1_000_000, seed: int = 0, **kwargs
) -> int:
    """Write a simulated log in chunks of customers; return the number of transactions.

    The file appears only when complete (written next to it, then renamed).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from clv.tables import atomic_path

    rows = 0
    with atomic_path(path) as tmp:
        writer = None
        try:
            for i, start in enumerate(range(0, customers, chunk)):
                frame = simulate(
                    min(chunk, customers - start), seed=seed + i, first_id=start, **kwargs
                )
                table = pa.Table.from_pandas(frame, preserve_index=False)
                writer = writer or pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
                rows += len(frame)
        finally:
            if writer is not None:
                writer.close()
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--bgnbd",
        default=",".join(str(v) for v in BGNBD.values()),
        help="r,alpha,a,b per week (default CDNOW's; 1.2,3,0.5,10 gives ~18 purchases each)",
    )
    args = parser.parse_args()
    params = dict(zip(BGNBD, (float(v) for v in args.bgnbd.split(",")), strict=True))
    count = write_parquet(args.out, args.customers, seed=args.seed, bgnbd=params)
    print(f"{count:,} transactions")
