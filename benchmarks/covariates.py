"""Fit and scoring time of the models with static covariates against the plain models.

    python benchmarks/covariates.py                      # 1M customers
    python benchmarks/covariates.py --customers 100000

Customers are simulated from Pareto/NBD with two binary attributes (four groups) that move
the purchase rate (×e^0.5, ×e^−0.3), the dropout rate (×e^0.4) and the spend scale (×e^0.3);
times are whole days in weeks, as clv's features make them. Per model: the median of
``--repeats`` fits, plain and with covariates (no Python reference fits these models by
maximum likelihood: pymc-marketing samples them by MCMC), and the recovered coefficients; then
``score_rfm`` of every customer with a bundle of the two covariate models against the plain
ones (intervals included).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import numpy as np
import pandas as pd

from clv.models.covariate_model import fit_covariate_model
from clv.models.covariates import CovariateDesign
from clv.models.fitting import fit_purchase_model
from clv.models.gamma_gamma import fit_spend_model
from clv.models.spend_covariates import fit_spend_covariates

TRUE = {"purchase.a": 0.5, "purchase.b": -0.3, "dropout.a": 0.4, "spend.b": 0.3}


def simulate(n: int, seed: int = 7) -> pd.DataFrame:
    """Pareto/NBD customers over 1–78 weeks with attributes a, b and Gamma-Gamma spend."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 2, n), rng.integers(0, 2, n)
    lam = rng.gamma(0.6, 1 / (8.0 * np.exp(-(TRUE["purchase.a"] * a + TRUE["purchase.b"] * b))))
    mu = rng.gamma(0.8, 1 / (20.0 * np.exp(-TRUE["dropout.a"] * a)))
    T = rng.integers(7, 547, n) / 7.0
    alive = np.minimum(rng.exponential(1 / mu), T)
    x = rng.poisson(lam * alive)
    t_x = np.where(
        x > 0, np.floor(alive * rng.uniform(size=n) ** (1 / np.maximum(x, 1)) * 7) / 7, 0
    )
    nu = rng.gamma(5.0, 1 / (40.0 * np.exp(TRUE["spend.b"] * b)))
    m = np.where(x > 0, rng.gamma(3.0 * np.maximum(x, 1), 1 / nu) / np.maximum(x, 1), 0.0)
    return pd.DataFrame(
        {
            "customer_id": np.arange(n).astype(str),
            "frequency": x,
            "recency": t_x,
            "T": T,
            "monetary_value": m,
            "a": a,
            "b": b,
        }
    )


def timed(fit, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fit()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    frame = simulate(args.customers)
    design = CovariateDesign.learn(frame, ["a", "b"], ["a", "b"])
    z = design.encode(frame)
    patterns = len(frame[["frequency", "recency", "T"]].drop_duplicates())
    print(f"{len(frame):,} customers, {patterns:,} distinct patterns, 4 covariate groups")
    print(f"{'model':<14} {'plain':>8} {'covariates':>11} {'ratio':>6}  coefficients (truth)")
    for kind in ("bgnbd", "pareto", "ggomnbd"):
        _, plain = timed(lambda k=kind: fit_purchase_model(k, frame, "week"), args.repeats)
        (model, _), with_ = timed(
            lambda k=kind: fit_covariate_model(k, frame, z, design, "week"), args.repeats
        )
        shown = ", ".join(f"{k} {v:+.3f}" for k, v in model.coefficients.items())
        print(f"{kind:<14} {plain:>7.2f}s {with_:>10.2f}s {with_ / plain:>6.1f}  {shown}")
    spend_design = CovariateDesign.learn(frame, (), (), spend=["a", "b"])
    zs = spend_design.encode(frame)
    plain_spend, plain = timed(lambda: fit_spend_model(frame), args.repeats)
    spend, with_ = timed(
        lambda: fit_spend_covariates(frame, spend_design, zs, plain_spend), args.repeats
    )
    shown = ", ".join(f"{k} {v:+.3f}" for k, v in spend.coefficients.items())
    print(f"{'gamma-gamma':<14} {plain:>7.2f}s {with_:>10.2f}s {with_ / plain:>6.1f}  {shown}")
    print(f"truth: {TRUE}")
    score(frame, design, z, spend)


def score(frame: pd.DataFrame, design, z, spend) -> None:
    """``score_rfm`` of every customer: a bundle with the covariate models against plain."""
    from clv.bundle import Bundle
    from clv.predict import define_segments, score_rfm

    purchase, _ = fit_covariate_model("pareto", frame, z, design, "week")
    plain = fit_purchase_model("pareto", frame, "week")
    for name, models in (
        ("plain", (plain, fit_spend_model(frame))),
        ("covariates", (purchase, spend)),
    ):
        bundle = Bundle(purchase=models[0], spend=models[1], config={}, fingerprint={})
        bundle = replace(bundle, segments=define_segments(bundle, frame, None, "rest", 52.0))
        times = []
        for _ in range(3):
            start = time.perf_counter()
            score_rfm(bundle, frame, 52.0)
            times.append(time.perf_counter() - start)
        print(f"score_rfm, {name}: {statistics.median(times):.2f} s")


if __name__ == "__main__":
    main()
