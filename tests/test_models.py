"""Purchase and spend models: weighted fits, seeding, retries, and behaviour of predictions."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clv._lifetimes import fit_with_retry, fitters
from clv.btyd import PurchaseModel, fit_purchase_model, rfm_patterns
from clv.errors import ModelFitError
from clv.spend import SpendCorrelationWarning, fit_spend_model


def test_patterns_keep_every_customer(sample_split):
    patterns = rfm_patterns(sample_split)
    assert patterns["weight"].sum() == len(sample_split)
    assert len(patterns) < len(sample_split)


@pytest.mark.parametrize("kind", ["bgnbd", "mbgnbd"])
def test_pattern_fit_equals_unweighted_lifetimes_fit(sample_split, kind):
    ours = fit_purchase_model(kind, sample_split, "week")
    cls = {"bgnbd": "BetaGeoFitter", "mbgnbd": "ModifiedBetaGeoFitter"}[kind]
    plain = getattr(fitters(), cls)()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain.fit(sample_split["frequency"], sample_split["recency"], sample_split["T"])
    for name, value in plain.params_.items():
        assert ours.params[name] == pytest.approx(value, rel=1e-4), name


def test_pareto_pattern_fit_equals_unweighted_fit_from_the_same_start(sample_split):
    ours = fit_purchase_model("pareto", sample_split, "week", seed=7)
    plain = fitters().ParetoNBDFitter()
    start = np.random.default_rng(7).normal(1.0, 0.05, size=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain.fit(
            sample_split["frequency"],
            sample_split["recency"],
            sample_split["T"],
            initial_params=start,
            tol=1e-8,
            maxiter=10_000,
        )
    for name, value in plain.params_.items():
        assert ours.params[name] == pytest.approx(value, rel=1e-3), name


def test_pareto_fit_is_reproducible_with_a_seed(sample_split):
    first = fit_purchase_model("pareto", sample_split, "week", seed=3)
    again = fit_purchase_model("pareto", sample_split, "week", seed=3)
    assert first.params == again.params


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
