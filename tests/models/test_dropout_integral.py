"""The likelihood's integral over the dropout time (clv.models.dropout_integral): Pareto/NBD's
value and analytic gradient from it against its closed form, and the two ways it is fitted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clv.models.fitting import fit_purchase_model
from clv.models.optimize import central_gradient, fit_patterns
from clv.models.pareto_nbd import (
    ParetoNBD,
    _ClosedForm,
    _pareto_objective,
    closed_form_pays,
    pareto_log_likelihood,
)
from clv.models.patterns import Patterns, rfm_patterns

#: From β / α = 1e-4 (a density peaked where the purchase factor is flat) to 1e4, small and
#: large shapes, heavy heterogeneity and almost none.
THETAS = [
    (0.6, 12.0, 0.35, 6.0),
    (0.6, 12.0, 0.35, 0.01),
    (0.6, 12.0, 0.001, 1e-4),
    (0.6, 12.0, 5.0, 500.0),
    (3.0, 0.5, 0.1, 0.1),
    (0.05, 100.0, 2.0, 1.0),
    (10.0, 10.0, 10.0, 1000.0),
    (0.2, 1e-3, 0.5, 10.0),
]


@pytest.fixture(scope="module")
def patterns(sample_split) -> Patterns:
    return Patterns.from_table(rfm_patterns(sample_split))


def _closed(theta: np.ndarray, data: Patterns) -> float:
    return -float(data.weight @ pareto_log_likelihood(theta, data)) / data.total


@pytest.mark.parametrize("theta", THETAS)
def test_pareto_value_and_gradient_equal_the_closed_form(patterns, theta):
    """Value to 1e-12 relative, gradient to central differences of the closed form."""
    log_theta = np.log(theta)
    value, gradient = _pareto_objective(log_theta, patterns, 0.0)
    closed = _closed(np.array(theta), patterns)
    assert value == pytest.approx(closed, rel=1e-12)
    numeric = central_gradient(lambda p: _closed(np.exp(p), patterns), log_theta)
    np.testing.assert_allclose(gradient, numeric, atol=1e-6)


def test_each_history_is_finite_where_the_closed_form_overflows():
    """A buyer of 101 at large s and β: the hypergeometric function overflows; the integral's
    value stands in, continuous with the closed form beside it."""
    theta = np.array([10.0, 10.0, 10.0, 1000.0])
    heavy = Patterns.of(np.array([101.0, 5.0]), np.array([45.3, 20.0]), np.array([48.0, 48.0]))
    values = pareto_log_likelihood(theta, heavy)
    assert np.all(np.isfinite(values))
    light = pareto_log_likelihood(
        theta, Patterns.of(np.array([5.0]), np.array([20.0]), np.array([48.0]))
    )
    assert values[1] == pytest.approx(light[0], rel=1e-12)


def test_the_closed_form_and_the_integral_reach_the_same_optimum(sample_split):
    """Central differences of the closed form and the integral's gradient fit the CDNOW sample
    to the same parameters (the published ones, test_reference_values)."""
    days = Patterns.from_table(rfm_patterns(sample_split))
    closed = fit_patterns(_ClosedForm(), days)
    by_integral = fit_patterns(ParetoNBD(), days)
    for name in ParetoNBD.params:
        assert by_integral.params[name] == pytest.approx(closed.params[name], rel=1e-5), name
    assert by_integral.log_likelihood == pytest.approx(closed.log_likelihood, abs=1e-6)


def test_whole_days_are_fitted_by_the_closed_form():
    """A large log in whole days repeats its (x, t) pairs across patterns: the closed form's
    differences are cheaper there; exact times make every pair new: the integral's gradient."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, 20_000).astype(float)
    T = rng.integers(30, 60, 20_000).astype(float)
    t_x = np.where(x > 0, np.floor(rng.uniform(0, 1, 20_000) * T), 0.0)
    whole = Patterns.of(x, t_x, T)
    exact = Patterns.of(x, t_x + rng.uniform(0, 0.5, 20_000) * (x > 0), T + 0.5)
    assert closed_form_pays(whole)
    assert not closed_form_pays(exact)


def test_an_exact_time_log_whose_optimum_is_at_equal_dropout():
    """5,000 simulated GG/NBD customers at exact times: Pareto/NBD's likelihood peaks where
    every customer drops out at the same rate (s, β → ∞), a region the closed form cannot
    reach (central differences stopped 95 units below it); the fit gets there and every score
    is a number."""
    from conftest import load_script

    truth = {"r": 0.9, "alpha": 8.0, "b": 0.04, "s": 1.2, "beta": 2.0}
    rfm = load_script("benchmarks/simulate.py").simulate_ggomnbd(5000, truth, seed=3)
    model = fit_purchase_model("pareto", rfm, "week")
    assert np.isfinite(model.log_likelihood)
    stuck = {"r": 1.0142, "alpha": 8.72289, "s": 3.22296, "beta": 76.08449}  # where it stopped
    data = Patterns.from_table(rfm_patterns(rfm))
    assert model.log_likelihood > ParetoNBD().log_likelihood(stuck, data) + 50
    x, t_x, T = data.x, data.t_x, data.T
    for values in (
        model.p_alive(x, t_x, T),
        model.expected_purchases(26.0, x, t_x, T),
        model.p_no_purchase(26.0, x, t_x, T),
    ):
        assert np.all(np.isfinite(values))


def test_a_closed_form_climb_to_equal_rates_leaves_for_the_integral(monkeypatch):
    """3,000 simulated buyers of one rate, in whole days (the closed form's case): the climb
    runs r up to no heterogeneity, where the hypergeometric series costs up to a second per
    evaluation and is not a number beyond r ≈ 500. The closed form is never evaluated past
    CLOSED_FORM_SHAPE (it went to r = 7,600 and took 17 s) and the fit is the integral's."""
    import clv.models.pareto_nbd as pareto_nbd
    from clv.features import build_calibration_holdout
    from conftest import load_script

    zoo = load_script("benchmarks/zoo.py")
    log = zoo.generate(zoo.Regime(customers=3000, months=12, heterogeneity="none"))
    end = log["date"].max()
    cal = build_calibration_holdout(log, end - pd.Timedelta(weeks=13), end, "week")
    data = Patterns.from_table(rfm_patterns(cal))
    assert closed_form_pays(data)
    shapes: list[float] = []
    closed = pareto_nbd._closed_form_objective

    def recorded(log_params, *args):
        shapes.append(float(np.exp(log_params[0])))
        return closed(log_params, *args)

    monkeypatch.setattr(pareto_nbd, "_closed_form_objective", recorded)
    fit = ParetoNBD().fit(data, 0.0)
    assert shapes and max(shapes) < pareto_nbd.CLOSED_FORM_SHAPE
    by_integral = fit_patterns(ParetoNBD(), data)
    assert fit.params == by_integral.params
    assert fit.params["r"] > 1e4  # the equal-rates edge, which the fit's caller takes as a limit
