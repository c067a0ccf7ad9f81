"""Purchase and spend models: fits equal lifetimes', likelihoods, retries, and predictions."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clv._lifetimes import fit_with_retry, fitters, guarded
from clv.errors import ModelFitError
from clv.models.beta_geo import bg_objective as _bg_objective
from clv.models.fitted import PurchaseModel
from clv.models.fitting import fit_purchase_model
from clv.models.gamma_gamma import SpendCorrelationWarning, fit_spend_model
from clv.models.limits import log_likelihood
from clv.models.optimize import central_gradient as _central_gradient
from clv.models.patterns import Patterns, rfm_patterns
from clv.models.registry import purchase_process


def test_patterns_keep_every_customer(sample_split):
    patterns = rfm_patterns(sample_split)
    assert patterns["weight"].sum() == len(sample_split)
    assert len(patterns) < len(sample_split)


def _lifetimes_fit(kind: str, rfm: pd.DataFrame, **kwargs) -> object:
    cls = {"bgnbd": "BetaGeoFitter", "mbgnbd": "ModifiedBetaGeoFitter", "pareto": "ParetoNBDFitter"}
    penalizer = kwargs.pop("penalizer_coef", 0.0)
    plain = getattr(fitters(), cls[kind])(penalizer_coef=penalizer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain.fit(*(rfm[c].to_numpy() for c in ("frequency", "recency", "T")), **kwargs)
    return plain


@pytest.mark.parametrize("kind", ["bgnbd", "mbgnbd"])
def test_pattern_fit_equals_unweighted_lifetimes_fit(sample_split, kind):
    ours = fit_purchase_model(kind, sample_split, "week")
    plain = _lifetimes_fit(kind, sample_split)
    for name, value in plain.params_.items():
        assert ours.params[name] == pytest.approx(value, rel=1e-6), name
        assert ours.standard_errors[name] == pytest.approx(plain.standard_errors_[name], rel=1e-4)


def test_pareto_fit_equals_a_tight_lifetimes_fit(sample_split):
    ours = fit_purchase_model("pareto", sample_split, "week")
    plain = _lifetimes_fit("pareto", sample_split, initial_params=np.ones(4), tol=1e-12)
    for name, value in plain.params_.items():
        assert ours.params[name] == pytest.approx(value, rel=1e-5), name
    assert set(ours.standard_errors) == {"r", "alpha", "s", "beta"}


@pytest.mark.parametrize("kind", ["bgnbd", "mbgnbd"])
def test_penalized_fit_follows_lifetimes_convention(sample_split, kind):
    """The penalty applies to the time-rescaled parameters and the mean log-likelihood."""
    ours = fit_purchase_model(kind, sample_split, "week", penalizer=0.05)
    plain = _lifetimes_fit(kind, sample_split, penalizer_coef=0.05)
    for name, value in plain.params_.items():
        assert ours.params[name] == pytest.approx(value, rel=1e-5), name
    assert ours.penalizer == 0.05


def test_pareto_penalty_shrinks_the_rescaled_parameters(sample_split):
    """Pareto/NBD takes the same convention (lifetimes divides its Pareto objective by the mean
    weight instead, which makes the penalty depend on the number of rows)."""
    scale = 1.0 / sample_split["T"].max()

    def size(model: PurchaseModel) -> float:
        p = model.params
        return p["r"] ** 2 + (p["alpha"] * scale) ** 2 + p["s"] ** 2 + (p["beta"] * scale) ** 2

    free = fit_purchase_model("pareto", sample_split, "week")
    penalized = fit_purchase_model("pareto", sample_split, "week", penalizer=0.05)
    assert size(penalized) < size(free)
    assert penalized.log_likelihood < free.log_likelihood


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(0.05, 20.0), min_size=4, max_size=4),
    st.sampled_from(["bgnbd", "mbgnbd", "pareto"]),
)
def test_log_likelihood_equals_lifetimes(sample_split, theta, kind):
    patterns = rfm_patterns(sample_split)
    data = Patterns.from_table(patterns)
    params = dict(zip(purchase_process(kind).params, theta, strict=True))
    x, t_x, T, w = data.x, data.t_x, data.T, data.weight
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if kind == "pareto":
            theirs = w @ fitters().ParetoNBDFitter._conditional_log_likelihood(
                np.array(theta), x, t_x, T
            )
        else:
            fitter = {"bgnbd": "BetaGeoFitter", "mbgnbd": "ModifiedBetaGeoFitter"}[kind]
            nll = getattr(fitters(), fitter)._negative_log_likelihood
            theirs = -nll(np.log(theta), x, t_x, T, w, 0.0) * w.sum()
    assert log_likelihood(kind, params, data) == pytest.approx(float(theirs), rel=1e-10)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-2.0, 2.0), min_size=4, max_size=4), st.booleans())
def test_bg_gradient_equals_finite_differences(sample_split, log_theta, modified):
    patterns = rfm_patterns(sample_split)
    data = Patterns.from_table(patterns).scaled(0.02)
    point = np.array(log_theta)
    _, grad = _bg_objective(point, data, 0.01, modified)
    numeric = _central_gradient(lambda p: _bg_objective(p, data, 0.01, modified)[0], point)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)


def test_no_repeat_purchases_fail_with_a_clear_error():
    rfm = pd.DataFrame({"frequency": [0] * 20, "recency": [0.0] * 20, "T": np.linspace(1, 30, 20)})
    with pytest.raises(ModelFitError, match=r"20 customers, 100.0% with no repeat purchase"):
        fit_purchase_model("bgnbd", rfm, "week")


def test_gamma_gamma_retries_with_a_penalizer_when_the_fit_fails():
    # Two identical spends: the unpenalized likelihood has no finite maximum.
    rfm = pd.DataFrame({"frequency": [1, 1], "monetary_value": [5.0, 5.0]})
    model = fit_spend_model(rfm, penalizer=0.0, retry_penalizer=0.001)
    assert model.penalizer == 0.001
    assert all(np.isfinite(v) and v > 0 for v in model.params.values())


def test_retry_reports_every_attempt_and_the_data():
    def never(coef: float) -> None:
        raise ArithmeticError(f"diverged at {coef}")

    with pytest.raises(ModelFitError) as info:
        fit_with_retry(never, [0.0, 0.01], what="BG/NBD", data="3 customers", advice="Do X.")
    message = str(info.value)
    assert "BG/NBD did not converge on 3 customers" in message
    assert "penalizer 0: ArithmeticError: diverged at 0.0" in message
    assert "penalizer 0.01" in message and message.endswith("Do X.")


def test_correlated_frequency_and_spend_warn():
    rng = np.random.default_rng(0)
    x = rng.integers(1, 20, 300)
    rfm = pd.DataFrame({"frequency": x, "monetary_value": 5.0 * x + rng.gamma(2, 2, 300)})
    with pytest.warns(
        SpendCorrelationWarning, match=r"Pearson r = (0\.[3-9]\d|1\.00), \|r\| > 0\.3"
    ):
        fit_spend_model(rfm)


def test_uncorrelated_cdnow_spend_does_not_warn(sample_split):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpendCorrelationWarning)
        model = fit_spend_model(sample_split)
    assert abs(model.frequency_spend_correlation) < 0.3


def test_expected_value_of_a_newcomer_is_the_population_mean(sample_split):
    model = fit_spend_model(sample_split)
    p, q, v = model.params["p"], model.params["q"], model.params["v"]
    assert model.expected_average_value([0], [0.0])[0] == pytest.approx(p * v / (q - 1))
    lifetimes_gg = fitters().GammaGammaFitter()
    lifetimes_gg.params_ = pd.Series(model.params)
    repeaters = sample_split[sample_split["frequency"] > 0]
    expected = lifetimes_gg.conditional_expected_average_profit(
        repeaters["frequency"], repeaters["monetary_value"]
    )
    np.testing.assert_allclose(
        model.expected_average_value(repeaters["frequency"], repeaters["monetary_value"]),
        expected,
        rtol=1e-12,
    )


MODELS = {
    "bgnbd": PurchaseModel("bgnbd", {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}, "week"),
    "mbgnbd": PurchaseModel("mbgnbd", {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614}, "week"),
    "pareto": PurchaseModel(
        "pareto", {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}, "week"
    ),
    "ggomnbd": PurchaseModel(
        "ggomnbd", {"r": 0.7, "alpha": 5.0, "b": 0.02, "s": 0.4, "beta": 0.3}, "week"
    ),
    "mbgcnbd": PurchaseModel(
        "mbgcnbd", {"k": 2.0, "r": 1.329, "alpha": 2.813, "a": 0.425, "b": 0.790}, "week"
    ),
}


@st.composite
def histories(draw):
    T = draw(st.floats(0.0, 80.0))
    x = draw(st.integers(0, 30))
    t_x = 0.0 if x == 0 else draw(st.floats(0.0, T))
    return x, t_x, T


@pytest.mark.parametrize("kind", sorted(MODELS))
@settings(max_examples=60, deadline=None)
@given(history=histories(), t=st.floats(0.1, 100.0), dt=st.floats(0.1, 50.0))
def test_prediction_invariants(kind, history, t, dt):
    model = MODELS[kind]
    x, t_x, T = ([v] for v in history)
    alive = model.p_alive(x, t_x, T)[0]
    silent = model.p_no_purchase(t, x, t_x, T)[0]
    assert 0.0 <= alive <= 1.0
    assert 0.0 <= silent <= 1.0
    assert silent >= 1.0 - alive - 1e-9  # a lost customer never buys
    assert model.p_no_purchase(t + dt, x, t_x, T)[0] <= silent + 1e-9
    assert (
        model.expected_purchases(t + dt, x, t_x, T)[0] >= model.expected_purchases(t, x, t_x, T)[0]
    )


@pytest.mark.parametrize("kind", sorted(MODELS))
@settings(max_examples=40, deadline=None)
@given(history=histories(), later=st.floats(0.0, 1.0))
def test_a_more_recent_purchase_never_lowers_p_alive(kind, history, later):
    model = MODELS[kind]
    x, t_x, T = history
    if x == 0:
        return
    more_recent = t_x + later * (T - t_x)
    assert model.p_alive([x], [more_recent], [T])[0] >= model.p_alive([x], [t_x], [T])[0] - 1e-9


def test_bgnbd_p_no_purchase_of_a_newcomer_equals_the_unconditional_pmf():
    model = MODELS["bgnbd"]
    plain = fitters().BetaGeoFitter()
    plain.params_ = pd.Series(model.params)
    for t in (1.0, 13.0, 52.0):
        assert model.p_no_purchase(t, [0], [0.0], [0.0])[0] == pytest.approx(
            plain.probability_of_n_purchases_up_to_time(t, 0), rel=1e-10
        )


def test_pareto_p_no_purchase_matches_a_simulation():
    """Monte Carlo from the Pareto/NBD posterior given (x, t_x, T), by rejection on the data."""
    model = MODELS["pareto"]
    r, alpha, s, beta = (model.params[k] for k in ("r", "alpha", "s", "beta"))
    rng = np.random.default_rng(1)
    n, T, t = 400_000, 30.0, 20.0
    lam = rng.gamma(r, 1 / alpha, n)
    mu = rng.gamma(s, 1 / beta, n)
    death = rng.exponential(1 / mu)
    # customers first bought at 0 and made no repeat purchase in (0, T]: x = 0, t_x = 0
    first = rng.exponential(1 / lam)
    quiet = first > np.minimum(death, T)
    alive = death[quiet] > T
    nxt = T + rng.exponential(1 / lam[quiet])
    no_purchase = ~alive | (nxt > np.minimum(death[quiet], T + t))
    assert model.p_no_purchase(t, [0], [0.0], [T])[0] == pytest.approx(
        no_purchase.mean(), abs=0.005
    )
    assert model.p_alive([0], [0.0], [T])[0] == pytest.approx(alive.mean(), abs=0.005)


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from(["bgnbd", "mbgnbd"]),
    st.lists(st.floats(0.1, 8.0), min_size=4, max_size=4),
    st.floats(0.5, 104.0),
)
def test_expected_purchases_equal_lifetimes(sample_split, kind, theta, t):
    """clv evaluates the hypergeometric term on the (x, T) grid; lifetimes per customer."""
    params = dict(zip(purchase_process(kind).params, theta, strict=True))
    params["a"] += 1.0  # lifetimes' formula needs a > 1
    model = PurchaseModel(kind, params, "week")
    x, t_x, T = (sample_split[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        theirs = model.process.lifetimes_model(
            model.params
        ).conditional_expected_number_of_purchases_up_to_time(t, x, t_x, T)
    ours = model.expected_purchases(t, x, t_x, T)
    assert np.all(np.isfinite(ours))
    # lifetimes' BG/NBD multiplies (x > 0) by a / (b + x − 1): 0 · ∞ = NaN at x = 0 when b = 1
    undefined = np.isnan(theirs)
    assert np.all(undefined == ((kind == "bgnbd") & (params["b"] == 1.0) & (x == 0)))
    np.testing.assert_allclose(ours[~undefined], theirs[~undefined], rtol=1e-10)


@pytest.mark.parametrize("penalizer", [0.0, 0.001])
def test_gamma_gamma_fit_equals_lifetimes(sample_split, penalizer):
    """clv maximizes lifetimes' objective with its exact gradient: same parameters, and the
    exact Hessian gives lifetimes' standard errors (autograd's Hessian of the same function)."""
    usable = sample_split[(sample_split["frequency"] > 0) & (sample_split["monetary_value"] > 0)]
    reference = fitters().GammaGammaFitter(penalizer_coef=penalizer)
    with guarded():
        reference.fit(usable["frequency"], usable["monetary_value"])
    model = fit_spend_model(sample_split, penalizer=penalizer)
    for name in ("p", "q", "v"):
        assert model.params[name] == pytest.approx(reference.params_[name], rel=1e-8), name
        if penalizer == 0.0:
            se = reference.standard_errors_[name]
            assert model.standard_errors[name] == pytest.approx(se, rel=1e-8), name


def test_gamma_gamma_does_not_accept_a_ridge_for_a_minimum():
    """One customer buying 547 times at the same price pulls the unpenalized fit along a ridge
    (p → ∞, v → 0: spend per purchase without spread), where BFGS stops for precision loss
    with a tiny gradient. That is no minimum (the Hessian is nearly singular): the fit retries
    with the penalizer and lands on an interior one, as lifetimes does."""
    x = [3, 1, 15, 1, 2, 4, 6, 7, 7, 1, 547]
    m = [23.72, 11.77, 71.4, 11.77, 13.38, 27.14, 30.03, 20.52, 22.31, 70.38, 10.0]
    rfm = pd.DataFrame({"frequency": x, "monetary_value": m})
    model = fit_spend_model(rfm, penalizer=0.0, retry_penalizer=0.001)
    assert model.penalizer == 0.001
    assert model.params == pytest.approx({"p": 7.43, "q": 2.564, "v": 6.58}, rel=1e-3)
    reference = fitters().GammaGammaFitter(penalizer_coef=0.001)
    with guarded():
        reference.fit(rfm["frequency"], rfm["monetary_value"])
    assert model.params == pytest.approx(dict(reference.params_), rel=1e-6)

    # far along the ridge the gradient vanishes too; the curvature test still says no
    from scipy.optimize import OptimizeResult

    from clv.models.gamma_gamma import GRADIENT_TOLERANCE, _at_a_strict_minimum, _Likelihood

    likelihood = _Likelihood(np.array(x, dtype=float), np.array(m))
    point = np.log([4.75e8, 2.9726, 1.2e-7])  # p·v fixed: spend per purchase without spread
    for _ in range(20):  # Newton steps to where the gradient passes as zero
        gradient = likelihood.objective(point, 0.0)[1]
        point = point - np.linalg.lstsq(likelihood.log_hessian(point) / 11, gradient)[0]
    ridge = OptimizeResult(x=point, jac=likelihood.objective(point, 0.0)[1])
    assert np.abs(ridge.jac).max() < GRADIENT_TOLERANCE and np.exp(point[0]) > 1e6
    assert not _at_a_strict_minimum(likelihood, ridge, 0.0)
    interior = OptimizeResult(
        x=model.log_params, jac=likelihood.objective(model.log_params, 0.001)[1]
    )
    assert _at_a_strict_minimum(likelihood, interior, 0.001)
