"""From the raw CDNOW sample, clv reproduces the published BTYD numbers (DOMAIN.md §2)."""

from __future__ import annotations

import numpy as np
import pytest

from clv.models.fitted import PurchaseModel
from clv.models.fitting import fit_purchase_model
from clv.models.gamma_gamma import fit_spend_model

REL = 0.002  # the tolerance, relative to the published value


def assert_params(found: dict[str, float], published: dict[str, float]) -> None:
    for name, value in published.items():
        assert found[name] == pytest.approx(value, rel=REL), (name, found[name], value)


def test_calibration_data_match_the_paper(sample_split):
    assert len(sample_split) == 2357
    assert (sample_split["frequency"] > 0).sum() == 946
    assert sample_split["frequency"].sum() == 2457
    assert sample_split["duration_holdout"].iloc[0] == pytest.approx(39.0)


def test_holdout_has_1882_repeat_transactions(sample_split):
    assert sample_split["frequency_holdout"].sum() == 1882


def test_bgnbd_parameters_and_log_likelihood(sample_split):
    model = fit_purchase_model("bgnbd", sample_split, "week")
    assert_params(model.params, {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426})
    assert model.log_likelihood == pytest.approx(-9582.4, abs=0.1)


def test_pareto_nbd_parameters_and_log_likelihood(sample_split):
    model = fit_purchase_model("pareto", sample_split, "week")
    assert_params(model.params, {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669})
    assert model.log_likelihood == pytest.approx(-9595.0, abs=0.1)


def test_gamma_gamma_parameters_and_log_likelihood(sample_split):
    model = fit_spend_model(sample_split)
    assert model.n_customers == 946
    assert_params(model.params, {"p": 6.25, "q": 3.74, "v": 15.44})
    assert model.log_likelihood == pytest.approx(-4055.92, abs=0.05)


PUBLISHED_BGNBD = PurchaseModel(
    kind="bgnbd", params={"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}, time_unit="week"
)


def test_conditional_expectation_of_the_papers_example():
    value = PUBLISHED_BGNBD.expected_purchases(39, 2, 30.43, 38.86)
    assert value == pytest.approx(1.226, abs=0.0005)


def test_holdout_forecast_at_published_parameters(sample_split):
    x, t_x, T = (sample_split[c].to_numpy() for c in ("frequency", "recency", "T"))
    total = PUBLISHED_BGNBD.expected_purchases(39, x, t_x, T).sum()
    assert total == pytest.approx(1654, abs=3)
    assert np.isfinite(total)
