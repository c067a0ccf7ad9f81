"""Boundary estimates are answers: a log where nobody leaves is fitted at every model's
no-dropout limit, the NBD, with its closed forms.

Checked: the NBD's likelihood and gradient against direct sums and differences; each model with
dropout at its edge (BG/NBD's a → 0, Pareto/NBD's s/β → 0) scores as the NBD; on simulated loyal
customers (Gamma-distributed rates, nobody leaving) every model that failed before ships the
limit and says so, its holdout deviance within 2 % of the true model's; and a log with real
dropout keeps its model (the limit is not a way around every failure).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import gammaln

from clv.metrics import poisson_deviance
from clv.models.fitted import PurchaseModel
from clv.models.fitting import fit_purchase_model
from clv.models.nbd import NBD
from clv.models.optimize import central_gradient
from clv.models.patterns import Patterns

R, ALPHA = 2.0, 6.0  # purchase rate Gamma(2, 6) per week: a purchase every 3 weeks on average


def loyal(customers: int, seed: int, weeks: float = 71.0, holdout: float = 26.0) -> pd.DataFrame:
    """Calibration RFM and holdout counts of customers who never leave (exact times, weeks)."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(R, 1.0 / ALPHA, customers)
    first = rng.uniform(0.0, 8.0, customers)
    T = weeks - first
    x = rng.poisson(lam * T) - 0.0
    # given x purchases after the first in (0, T], their times are uniform: the last is T·U^(1/x)
    t_x = np.where(x > 0, T * rng.uniform(size=customers) ** (1.0 / np.maximum(x, 1)), 0.0)
    return pd.DataFrame(
        {
            "frequency": x.astype(float),
            "recency": t_x,
            "T": T,
            "holdout": rng.poisson(lam * holdout).astype(float),
            "lam": lam,
        }
    )


def test_likelihood_and_gradient_are_the_nbds():
    data = loyal(300, seed=1)
    patterns = Patterns.of(*(data[c].to_numpy() for c in ("frequency", "recency", "T")))
    params = {"r": 1.7, "alpha": 4.2}
    x, T = data["frequency"].to_numpy(), data["T"].to_numpy()
    by_hand = np.sum(
        gammaln(1.7 + x) - gammaln(1.7) + 1.7 * np.log(4.2) - (1.7 + x) * np.log(4.2 + T)
    )
    assert NBD().log_likelihood(params, patterns) == pytest.approx(by_hand, rel=1e-12)
    point = np.log([1.7, 4.2])
    _, grad = NBD().objective(point, patterns, 0.01, None)
    numeric = central_gradient(lambda p: NBD().objective(p, patterns, 0.01, None)[0], point)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6)


@pytest.mark.parametrize(
    ("kind", "edge"),
    [
        ("bgnbd", {"a": 1e-12, "b": 3.0}),
        ("mbgnbd", {"a": 1e-12, "b": 3.0}),
        ("pareto", {"s": 1e-12, "beta": 3.0}),
    ],
)
def test_a_model_at_its_no_dropout_edge_scores_as_the_nbd(kind, edge):
    limit = PurchaseModel("nbd", {"r": R, "alpha": ALPHA}, "week")
    model = PurchaseModel(kind, {"r": R, "alpha": ALPHA, **edge}, "week")
    x = np.array([0.0, 1.0, 4.0, 30.0])
    t_x = np.array([0.0, 5.0, 20.0, 60.0])
    T = np.array([10.0, 30.0, 40.0, 70.0])
    np.testing.assert_allclose(model.p_alive(x, t_x, T), 1.0, atol=1e-9)
    np.testing.assert_allclose(limit.p_alive(x, t_x, T), 1.0)
    for got, want in [
        (model.expected_purchases(13.0, x, t_x, T), limit.expected_purchases(13.0, x, t_x, T)),
        (model.p_no_purchase(13.0, x, t_x, T), limit.p_no_purchase(13.0, x, t_x, T)),
        (model.purchase_pmf(13.0, x, t_x, T, 40), limit.purchase_pmf(13.0, x, t_x, T, 40)),
    ]:
        np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("kind", ["bgnbd", "mbgnbd", "pareto", "ggomnbd"])
def test_loyal_customers_fit_at_the_limit_and_forecast_like_the_truth(kind):
    data = loyal(2000, seed=7)
    model = fit_purchase_model(kind, data, "week")
    assert model.kind in ("nbd", kind)  # the limit, or a converged fit at the edge
    x, t_x, T = (data[c].to_numpy() for c in ("frequency", "recency", "T"))
    assert np.all(model.p_alive(x, t_x, T) > 0.99)
    if model.kind == "nbd":
        assert model.limit_of == kind and "no-dropout limit" in model.name
        assert "this log shows no customer leaving" in model.limit_note
        assert PurchaseModel.from_dict(model.to_dict()) == model  # the bundle keeps it
    forecast = model.expected_purchases(26.0, x, t_x, T)
    # the oracle: the generating model at the population's true parameters
    truth = PurchaseModel("nbd", {"r": R, "alpha": ALPHA}, "week")
    ours = poisson_deviance(data["holdout"], forecast)
    best = poisson_deviance(data["holdout"], truth.expected_purchases(26.0, x, t_x, T))
    assert np.all(np.isfinite(forecast)) and ours <= best * 1.02


def test_a_log_with_dropout_keeps_its_model(sample_split):
    model = fit_purchase_model("bgnbd", sample_split, "week")
    assert model.kind == "bgnbd" and model.limit_of is None
    assert model.params["a"] == pytest.approx(0.793, abs=0.01)


def test_a_mixture_that_runs_to_a_point_mass_is_shipped_at_that_limit():
    """Regular (Erlang-3) buyers who never leave, with seasonality (the zoo's regime that ended
    'No candidate purchase model converged'): BG/NBD's a and b run up together, a/(a + b) fixed.
    The fit is shipped at that homogeneous-dropout limit, named, round-tripped through JSON, its
    scores numbers; moving farther along the ray gains less than FLAT (the supremum is there)."""
    from clv.features import build_calibration_holdout
    from clv.models.limits import FARTHER, log_likelihood
    from clv.models.optimize import FLAT
    from clv.models.patterns import rfm_patterns
    from conftest import load_script

    zoo = load_script("benchmarks/zoo.py")
    regime = zoo.Regime(
        customers=1500, months=12, dropout="none", k=3, amounts="constant", seasonality=0.6,
        holdout=13, churn=4, seed=35003,
    )  # fmt: skip
    log = zoo.generate(regime)
    end = log["date"].max()
    cal = build_calibration_holdout(log, end - pd.Timedelta(weeks=13), end, "week")
    model = fit_purchase_model("bgnbd", cal, "week")
    assert model.homogeneous == ("dropout",) and model.kind == "bgnbd"
    assert model.name == "BG/NBD at its homogeneous-dropout limit"
    assert "every customer has the same dropout" in model.limit_note
    a, b = model.params["a"], model.params["b"]
    assert a > 1 and b > 1 and 0 < a / (a + b) < 0.2
    patterns = Patterns.from_table(rfm_patterns(cal))
    farther = model.params | {"a": a * FARTHER, "b": b * FARTHER}
    gain = log_likelihood("bgnbd", farther, patterns) - model.log_likelihood
    assert gain > -FLAT
    assert PurchaseModel.from_dict(model.to_dict()) == model
    x, t_x, T = (cal[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    expected = model.expected_purchases(13.0, x, t_x, T)
    assert np.isfinite(expected).all() and (expected >= 0).all()
    assert ((model.p_alive(x, t_x, T) >= 0) & (model.p_alive(x, t_x, T) <= 1)).all()
    # the limit forecasts as well as the no-dropout truth (Erlang-3 gaps: the truth is not BG/NBD)
    actual = cal["frequency_holdout"].to_numpy(dtype=float)
    naive = x / np.maximum(T, 1e-9) * 13.0
    assert poisson_deviance(actual, expected) < poisson_deviance(actual, naive)


def test_regular_buyers_who_never_leave_ship_mbg_cnbd_at_its_no_dropout_edge():
    """Erlang-3 buyers at one rate who never leave (MBG/CNBD-k's own limit, an Erlang-k renewal
    process, not the NBD): the fit runs to a → 0 and r, α → ∞ and is shipped there, named, with
    a at EDGE_SHAPE, k = 3, P(alive) 1 to 1e-6, every score a number, round-tripped through
    JSON. A fit warm-started from that edge on an earlier cutoff, where a does not move, is the
    edge too (it failed before, and the earlier holdout window lost MBG/CNBD-k)."""
    from clv.features import add_log_gaps, build_calibration_holdout
    from clv.models.limits import EDGE_SHAPE
    from conftest import load_script

    zoo = load_script("benchmarks/zoo.py")
    regime = zoo.Regime(customers=2000, months=24, dropout="none", heterogeneity="none", k=3)
    log = zoo.generate(regime)
    end = log["date"].max()

    def calibration(weeks_before: int) -> pd.DataFrame:
        cut = end - pd.Timedelta(weeks=weeks_before)
        cal = build_calibration_holdout(log, cut, cut + pd.Timedelta(weeks=26), "week")
        return add_log_gaps(cal, log, cut, "week")

    cal = calibration(26)
    model = fit_purchase_model("mbgcnbd", cal, "week")
    assert "no_dropout" in model.homogeneous and model.params["a"] == EDGE_SHAPE
    assert model.params["k"] == 3.0
    assert model.name.startswith("MBG/CNBD-k at its no-dropout")
    assert "no customer drops out" in model.limit_note
    x, t_x, T = (cal[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    assert np.all(model.p_alive(x, t_x, T) > 1 - 1e-6)
    forecast = model.expected_purchases(26.0, x, t_x, T)
    assert np.all(np.isfinite(forecast)) and np.all(forecast > 0)
    assert PurchaseModel.from_dict(model.to_dict()) == model
    earlier = fit_purchase_model("mbgcnbd", calibration(52), "week", start=model.params)
    assert "no_dropout" in earlier.homogeneous
