"""Discounted CLV: against lifetimes where the definitions coincide, and its own invariants."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clv._lifetimes import fitters, guarded
from clv.models.fitting import fit_purchase_model
from clv.models.gamma_gamma import fit_spend_model
from clv.value import discounted_clv, step_boundaries


@pytest.fixture(scope="module")
def fitted(sample_split):
    return fit_purchase_model("bgnbd", sample_split, "week"), fit_spend_model(sample_split)


def test_equals_lifetimes_customer_lifetime_value(sample_split, fitted):
    """lifetimes steps in 4.345-week "months" with a discount rate per step; so can clv."""
    purchase, spend = fitted
    x, t_x, T, m = (sample_split[c] for c in ("frequency", "recency", "T", "monetary_value"))
    bgf = fitters().BetaGeoFitter()
    bgf.params_ = pd.Series(purchase.params)
    bgf.predict = bgf.conditional_expected_number_of_purchases_up_to_time  # as fit() sets it
    ggf = fitters().GammaGammaFitter()
    ggf.params_ = pd.Series(spend.params)
    with guarded():
        expected = ggf.customer_lifetime_value(
            bgf, x, t_x, T, m, time=12, discount_rate=0.01, freq="W"
        ).to_numpy()
    ours = discounted_clv(
        lambda t: purchase.expected_purchases(t, x, t_x, T),
        spend.expected_average_value(x, m),
        horizon=12,
        step_length=4.345,
        discount_rate=0.01,
    )
    np.testing.assert_allclose(ours, expected, rtol=1e-10)


def test_without_discount_clv_is_margin_times_purchases_times_spend(sample_split, fitted):
    purchase, spend = fitted
    x, t_x, T, m = (
        sample_split[c].to_numpy() for c in ("frequency", "recency", "T", "monetary_value")
    )
    value = spend.expected_average_value(x, m)
    clv = discounted_clv(
        lambda t: purchase.expected_purchases(t, x, t_x, T), value, 26.5, margin=0.3
    )
    np.testing.assert_allclose(
        clv, 0.3 * purchase.expected_purchases(26.5, x, t_x, T) * value, rtol=1e-12
    )


def test_discounting_lowers_value_and_more_so_at_higher_rates(sample_split, fitted):
    purchase, spend = fitted
    x, t_x, T, m = (
        sample_split[c].to_numpy() for c in ("frequency", "recency", "T", "monetary_value")
    )
    value = spend.expected_average_value(x, m)
    results = [
        discounted_clv(
            lambda t: purchase.expected_purchases(t, x, t_x, T), value, 52, discount_rate=d
        )
        for d in (0.0, 0.002, 0.02)
    ]
    assert np.all(results[0] >= results[1]) and np.all(results[1] >= results[2])
    assert results[2].sum() < results[0].sum()


def test_step_boundaries_handle_fractional_and_short_horizons():
    assert step_boundaries(0.5).tolist() == [0.5]
    assert step_boundaries(2.0).tolist() == [1.0, 2.0]
    with pytest.raises(ValueError):
        step_boundaries(0)
