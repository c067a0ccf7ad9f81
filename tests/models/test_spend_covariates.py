"""Gamma-Gamma with static covariates (clv.models.spend_covariates): no covariate effect is
the plain model (equal to lifetimes'), the chain-rule gradient equals differences, the
coefficients of simulated customers are recovered, and each group is the plain model at
``v·e^(δᵀz)``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from clv.models.covariates import CovariateDesign
from clv.models.gamma_gamma import SpendModel, fit_spend_model
from clv.models.groups import spend_per_transaction
from clv.models.optimize import central_gradient
from clv.models.spend_covariates import (
    CovariateSpendModel,
    _GroupedLikelihood,
    fit_spend_covariates,
    spend_model_from_dict,
)


def _simulate(rng, n: int, p: float, q: float, v: float, delta: float) -> pd.DataFrame:
    """Customers with 1–10 repeat purchases, Gamma(p, ν) spend, ν ~ Gamma(q, v·e^(δz))."""
    z = rng.integers(0, 2, n).astype(float)
    x = rng.integers(1, 11, n).astype(float)
    nu = rng.gamma(q, 1.0 / (v * np.exp(delta * z)))
    m = rng.gamma(p * x, 1.0 / nu) / x  # the mean of x Gamma(p, ν) spends
    return pd.DataFrame({"frequency": x, "monetary_value": m, "premium": z})


@pytest.fixture(scope="module")
def simulated():
    frame = _simulate(np.random.default_rng(5), 8000, 4.0, 6.0, 30.0, 0.6)
    design = CovariateDesign.learn(frame, (), (), spend=["premium"])
    return frame, design, design.encode(frame)


def test_simulated_spend_effect_is_recovered(simulated):
    frame, design, z = simulated
    plain = fit_spend_model(frame)
    model = fit_spend_covariates(frame, design, z, plain)
    truth = {"p": 4.0, "q": 6.0, "v": 30.0, "spend.premium": 0.6}
    values = {**model.params, **model.coefficients}
    for name, value in truth.items():
        assert abs(values[name] - value) < 4 * model.standard_errors[name], name
    assert 2 * (model.log_likelihood - plain.log_likelihood) > 100  # the effect is plain to see


def test_no_effect_is_the_plain_model_and_the_gradient_is_exact(simulated):
    frame, _, z = simulated
    x, m = frame["frequency"].to_numpy(), frame["monetary_value"].to_numpy()
    plain = fit_spend_model(frame)
    likelihood = _GroupedLikelihood(x, m, z)
    theta = np.concatenate([plain.log_params, [0.0]])
    assert likelihood.total(theta)[0] == pytest.approx(plain.log_likelihood, rel=1e-12)
    point = theta + np.array([0.1, -0.2, 0.05, 0.3])
    _, slope = likelihood.objective(point, 0.01, 0.5)
    numeric = central_gradient(lambda t: likelihood.objective(t, 0.01, 0.5)[0], point)
    np.testing.assert_allclose(slope, numeric, rtol=1e-6, atol=1e-9)


def test_a_group_is_the_plain_model_at_its_scale(simulated):
    frame, design, z = simulated
    model = CovariateSpendModel(
        params={"p": 4.0, "q": 6.0, "v": 30.0},
        coefficients={"spend.premium": 0.5},
        design=design,
        n_customers=10,
        frequency_spend_correlation=0.0,
        log_likelihood=-50.0,
        covariance=tuple(map(tuple, np.diag([0.01, 0.02, 0.03, 0.04]).tolist())),
    )
    group = model.for_group(np.array([1.0]))
    assert group.params["v"] == pytest.approx(30.0 * np.exp(0.5))
    assert group.population_mean == pytest.approx(4.0 * 30.0 * np.exp(0.5) / 5.0)
    assert np.asarray(group.covariance)[2, 2] == pytest.approx(0.03 + 0.04)
    x, m = frame["frequency"].to_numpy(), frame["monetary_value"].to_numpy()
    expected = np.where(
        z[:, 0] == 1,
        group.expected_average_value(x, m),
        model.for_group(np.array([0.0])).expected_average_value(x, m),
    )  # what scoring does: each group by its plain model (clv.models.groups)
    np.testing.assert_allclose(spend_per_transaction(model, frame), expected, rtol=1e-14)
    again = spend_model_from_dict(json.loads(json.dumps(model.to_dict())))
    assert again == model
    plain = SpendModel({"p": 4.0, "q": 6.0, "v": 30.0}, 10, 0.0, log_likelihood=-50.0)
    assert spend_model_from_dict(plain.to_dict()) == plain
