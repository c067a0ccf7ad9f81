"""Gamma-Gompertz/NBD (clv.models.gompertz_nbd).

References: CLVTools' published fit on the CDNOW sample (``tests/testthat/
test_correctness_ggomnbd.R``: LL −9594.9762, r 0.55313, α 10.5758, s 0.60682) and Bemmaor &
Glady (2012, Table 2: LL −9594.98); the model's formulas evaluated by adaptive quadrature (the
Matlab code of Bemmaor & Glady that CLVTools tests against); its Pareto/NBD limit; parameters
recovered from simulated customers.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import gammaln

from clv.models.fitted import PurchaseModel
from clv.models.fitting import fit_purchase_model
from clv.models.optimize import central_gradient
from clv.models.patterns import Patterns
from clv.models.registry import PURCHASE_MODELS

GG = PURCHASE_MODELS["ggomnbd"]
PARETO = PURCHASE_MODELS["pareto"]
PARAMS = {"r": 0.7, "alpha": 5.0, "b": 0.02, "s": 0.4, "beta": 0.3}
# new customer, non-repeat buyer, light and heavy buyers, one dormant for years
X = np.array([0.0, 0.0, 1.0, 3.0, 10.0, 40.0, 100.0, 5.0])
T_X = np.array([0.0, 0.0, 5.0, 30.0, 12.0, 20.0, 77.0, 1.0])
T = np.array([0.0, 40.0, 40.0, 40.0, 78.0, 78.0, 78.0, 200.0])


def _density(p: dict[str, float], tau: float) -> float:
    """Bemmaor & Glady's dropout density of the population at ``tau``."""
    b, s, beta = p["b"], p["s"], p["beta"]
    return b * s * beta**s * np.exp(b * tau) * (beta + np.expm1(b * tau)) ** (-(s + 1))


def _by_quadrature(p: dict[str, float], x: float, t_x: float, T: float) -> tuple[float, float]:
    """Log-likelihood and P(alive) of one history, the integral by adaptive quadrature."""
    r, alpha, b, s, beta = (p[k] for k in ("r", "alpha", "b", "s", "beta"))
    alive = (beta / (beta + np.expm1(b * T))) ** s * (alpha + T) ** (-(r + x))
    dropout = 0.0
    if t_x < T:
        dropout = quad(
            lambda tau: _density(p, tau) * (alpha + tau) ** (-(r + x)),
            t_x,
            T,
            epsabs=0.0,
            epsrel=1e-13,
            limit=200,
        )[0]
    front = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    return front + np.log(alive + dropout), alive / (alive + dropout)


def test_published_fit_on_the_cdnow_sample(sample_split):
    """CDNOW's best GG/NBD is the constant-hazard limit: Pareto/NBD's likelihood, with b and
    β on the ridge β / b = Pareto's β (CLVTools' b = 1.1e-6, β = 1.3e-5; the paper's 0.0002,
    0.0026: both on it)."""
    model = fit_purchase_model("ggomnbd", sample_split, "week")
    assert model.log_likelihood == pytest.approx(-9594.9762, abs=0.005)
    for name, value in {"r": 0.55313, "alpha": 10.5758, "s": 0.60682}.items():
        assert model.params[name] == pytest.approx(value, rel=0.002), name
    assert model.params["b"] < 1e-4
    assert model.params["beta"] / model.params["b"] == pytest.approx(11.669, rel=0.002)
    assert model.penalizer == 0.0  # the ridge's end is a fit, not a failure


def test_likelihood_and_p_alive_equal_adaptive_quadrature():
    ours = GG.log_likelihood_each(PARAMS, X, T_X, T)
    alive = 1.0 / (1.0 + np.exp(GG.log_odds_dead(PARAMS, X, T_X, T)))
    for i in range(len(X)):
        ll, p_alive = _by_quadrature(PARAMS, X[i], T_X[i], T[i])
        assert ours[i] == pytest.approx(ll, rel=1e-12, abs=1e-12), i
        assert alive[i] == pytest.approx(p_alive, rel=1e-10, abs=1e-15), i


def test_total_log_likelihood_weights_patterns():
    data = Patterns(X, T_X, T, np.arange(1.0, len(X) + 1.0))
    assert GG.log_likelihood(PARAMS, data) == pytest.approx(
        float(data.weight @ GG.log_likelihood_each(PARAMS, X, T_X, T)), rel=1e-13
    )


@pytest.mark.parametrize("log_params", [np.log([0.7, 5.0, 0.02, 0.4, 0.3]), np.zeros(5)])
def test_gradient_equals_finite_differences(log_params):
    data = Patterns(X, T_X, T / 200.0, np.arange(1.0, len(X) + 1.0))
    _, gradient = GG.objective(log_params, data, 0.01, None)
    numeric = central_gradient(lambda p: GG.objective(p, data, 0.01, None)[0], log_params)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-8)


def test_expected_purchases_of_a_newcomer_equal_the_papers_expectation():
    """Bemmaor & Glady's Matlab expectation (as CLVTools tests it): r/α · [S(t)·t + b·s·β^s ·
    ∫_0^t τ e^(bτ) (β + e^(bτ) − 1)^(−(s+1)) dτ]."""
    r, alpha, b, s, beta = (PARAMS[k] for k in ("r", "alpha", "b", "s", "beta"))
    t = np.array([0.0, 1.0, 13.0, 52.0, 260.0])
    ours = PurchaseModel("ggomnbd", PARAMS, "week").expected_purchases_new(t)
    for i, ti in enumerate(t):
        inner = quad(
            lambda tau: tau * np.exp(b * tau) * (beta + np.expm1(b * tau)) ** (-(s + 1)),
            0.0,
            ti,
            epsabs=0.0,
            epsrel=1e-12,
        )[0]
        paper = r / alpha * ((beta / (beta + np.expm1(b * ti))) ** s * ti + b * s * beta**s * inner)
        assert ours[i] == pytest.approx(paper, rel=1e-10, abs=1e-15), ti


def test_conditional_expected_purchases_equal_quadrature():
    """P(alive) · (r + x)/(α + T) · ∫_0^t S(T + u) / S(T) du, the integral by quad."""
    r, alpha, b, s, beta = (PARAMS[k] for k in ("r", "alpha", "b", "s", "beta"))
    ours = GG.expected_purchases(PARAMS, 39.0, X, T_X, T)
    alive = 1.0 / (1.0 + np.exp(GG.log_odds_dead(PARAMS, X, T_X, T)))
    for i in range(len(X)):
        base = beta + np.expm1(b * T[i])
        lived = quad(lambda u: (base / (beta + np.expm1(b * (T[i] + u)))) ** s, 0.0, 39.0)[0]  # noqa: B023
        expected = alive[i] * (r + X[i]) / (alpha + T[i]) * lived
        assert ours[i] == pytest.approx(expected, rel=1e-10), i


def test_constant_hazard_limit_is_pareto_nbd():
    """b → 0 with β / b fixed: every quantity is Pareto/NBD's (tested against lifetimes)."""
    pareto = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
    b = 1e-9
    gg = {"r": 0.553, "alpha": 10.578, "b": b, "s": 0.606, "beta": 11.669 * b}
    ll_gg = GG.log_likelihood_each(gg, X, T_X, T)
    ll_pareto = [PARETO.log_likelihood(pareto, Patterns.of(X[i], T_X[i], T[i])) for i in range(8)]
    np.testing.assert_allclose(ll_gg, ll_pareto, rtol=1e-7)
    for method in ("log_odds_dead",):
        np.testing.assert_allclose(
            getattr(GG, method)(gg, X, T_X, T)[1:],
            getattr(PARETO, method)(pareto, X, T_X, T)[1:],
            rtol=1e-6,
        )
    np.testing.assert_allclose(
        GG.expected_purchases(gg, 39.0, X, T_X, T),
        PARETO.expected_purchases(pareto, 39.0, X, T_X, T),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        GG.purchase_pmf(gg, 39.0, X, T_X, T, 30),
        PARETO.purchase_pmf(pareto, 39.0, X, T_X, T, 30),
        atol=1e-8,
    )


def test_scores_at_the_limit_are_pareto_nbds_closed_forms_without_a_seam():
    """Where b × the longest time scored is below 1e-8 (a fit shipped at its limit), the scores
    are Pareto/NBD's closed forms at β / b; just above, the quadrature's: the two agree."""
    pareto = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}

    def at(b: float) -> dict[str, float]:
        return {"r": 0.553, "alpha": 10.578, "b": b, "s": 0.606, "beta": 11.669 * b}

    span = T.max() + 39.0
    below, above = at(0.99e-8 / span), at(1.01e-8 / span)
    np.testing.assert_array_equal(
        GG.expected_purchases(below, 39.0, X, T_X, T),
        PARETO.expected_purchases(pareto, 39.0, X, T_X, T),
    )
    np.testing.assert_array_equal(
        GG.purchase_pmf(below, 39.0, X, T_X, T, 10),
        PARETO.purchase_pmf(pareto, 39.0, X, T_X, T, 10),
    )
    for method in ("expected_purchases", "p_no_purchase"):
        np.testing.assert_allclose(
            getattr(GG, method)(below, 39.0, X, T_X, T),
            getattr(GG, method)(above, 39.0, X, T_X, T),
            rtol=1e-7,
        )
    np.testing.assert_allclose(
        GG.log_odds_dead(below, X, T_X, T)[1:], GG.log_odds_dead(above, X, T_X, T)[1:], rtol=1e-7
    )
    np.testing.assert_allclose(
        GG.expected_purchases_new(at(1e-12), np.array([10.0, 52.0])),
        GG.expected_purchases_new(at(1.01e-8 / 52.0), np.array([10.0, 52.0])),
        rtol=1e-7,
    )


def test_parameters_are_recovered_from_simulated_customers():
    """A hazard that rises with age (b > 0): the fit finds it, within 4 standard errors, and
    the likelihood-ratio test prefers GG/NBD to Pareto/NBD by far."""
    from conftest import load_script

    truth = {"r": 0.9, "alpha": 8.0, "b": 0.04, "s": 1.2, "beta": 2.0}
    rfm = load_script("benchmarks/simulate.py").simulate_ggomnbd(6000, truth, seed=3)
    model = fit_purchase_model("ggomnbd", rfm, "week")
    for name, value in truth.items():
        se = model.standard_errors[name]
        assert abs(model.params[name] - value) < 4 * se, (name, model.params[name], value, se)
    pareto = fit_purchase_model("pareto", rfm, "week")
    assert 2 * (model.log_likelihood - pareto.log_likelihood) > 10.83  # χ²(1) at 0.1 %
    # the same customers in days: α is a time, b a rate per time, the rest have no unit
    daily = fit_purchase_model(
        "ggomnbd", rfm.assign(recency=rfm.recency * 7, T=rfm["T"] * 7), "day"
    )
    expected = model.params | {"alpha": model.params["alpha"] * 7, "b": model.params["b"] / 7}
    for name, value in expected.items():
        assert daily.params[name] == pytest.approx(value, rel=1e-4), name


def test_saved_and_loaded_as_json():
    model = PurchaseModel("ggomnbd", PARAMS, "week", log_likelihood=-1.0)
    again = PurchaseModel.from_dict(model.to_dict())
    assert again == model
    np.testing.assert_array_equal(
        again.expected_purchases(13.0, X, T_X, T), model.expected_purchases(13.0, X, T_X, T)
    )


@pytest.mark.parametrize(
    ("cutoff", "leaves_the_limit"), [("2007-01-01", False), ("2007-07-01", True)]
)
def test_fitted_through_its_pareto_limit_on_the_grocery_log(cutoff, leaves_the_limit):
    """BTYDplus' grocery log: cut at 2007-01-01 the likelihood falls as b grows from the
    Pareto/NBD limit, which is the answer (the fit from the default start crawled towards it
    and stopped with "precision loss", so no GG/NBD was shipped); cut at 2007-07-01 it rises,
    and the fit leaves the limit with a higher likelihood than Pareto/NBD's. Either way it is at
    least as good as a fit from the default start."""
    from pathlib import Path

    import pandas as pd

    from clv.config import DataConfig
    from clv.data import load_transactions
    from clv.features import build_calibration_holdout
    from clv.models.optimize import fit_patterns
    from clv.models.patterns import rfm_patterns

    log = load_transactions(str(Path(__file__).parents[1] / "data" / "grocery.csv"), DataConfig())
    cut = pd.Timestamp(cutoff)
    cal = build_calibration_holdout(log.compact, cut, cut + pd.Timedelta(weeks=26), "week")
    model = fit_purchase_model("ggomnbd", cal, "week")
    pareto = fit_purchase_model("pareto", cal, "week")
    at_limit = model.params["b"] * cal["T"].max() < 1e-6
    assert at_limit is not leaves_the_limit
    if leaves_the_limit:
        assert model.log_likelihood > pareto.log_likelihood + 0.1
    else:
        assert model.log_likelihood == pytest.approx(pareto.log_likelihood, abs=1e-6)
    cold = fit_patterns(GG, Patterns.from_table(rfm_patterns(cal)))
    assert model.log_likelihood >= cold.log_likelihood - 1e-6
