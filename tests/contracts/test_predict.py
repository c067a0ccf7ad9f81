"""Scoring through clv.predict: columns, customer lists, as-of, units, chunking."""

from __future__ import annotations

import importlib
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import clv.predict as predict
from clv.bundle import Bundle
from clv.config import DataConfig
from clv.data import load_transactions
from clv.errors import DataValidationError
from clv.models.fitting import fit_purchase_model
from clv.models.gamma_gamma import fit_spend_model

COLUMNS = [
    "customer_id",
    "has_history",
    "frequency",
    "recency",
    "T",
    "monetary_value",
    "p_alive",
    "expected_purchases",
    "expected_purchases_low",
    "expected_purchases_high",
    "p_no_purchase",
    "expected_avg_value",
    "clv",
    "clv_low",
    "clv_high",
    "value_segment",
]


@pytest.fixture(scope="module")
def bundle(sample_split) -> Bundle:
    fitted = Bundle(
        purchase=fit_purchase_model("bgnbd", sample_split, "week"),
        spend=fit_spend_model(sample_split),
        config={},
        fingerprint={},
    )
    return replace(fitted, segments=predict.define_segments(fitted, sample_split))


def test_scores_every_customer_with_the_documented_columns(bundle, sample_log):
    scores = predict.score_transactions(bundle, sample_log, horizon=52, discount_rate=0.002)
    assert scores.columns.tolist() == COLUMNS
    assert len(scores) == 2357 and scores["customer_id"].is_unique
    assert scores[COLUMNS[2:]].notna().all().all()
    assert scores["p_no_purchase"].between(0, 1).all() and scores["p_alive"].between(0, 1).all()


def test_as_of_scores_what_was_known_on_that_day(bundle, sample_split):
    log = load_transactions("cdnow-sample", DataConfig(), as_of=pd.Timestamp("1997-09-30"))
    scores = predict.score_transactions(bundle, log, horizon=39, as_of=pd.Timestamp("1997-09-30"))
    np.testing.assert_allclose(scores["T"], sample_split["T"])
    np.testing.assert_allclose(scores["recency"], sample_split["recency"])
    direct = bundle.purchase.expected_purchases(
        39, sample_split["frequency"], sample_split["recency"], sample_split["T"]
    )
    np.testing.assert_allclose(scores["expected_purchases"], direct, rtol=1e-12)


def test_customer_list_scores_newcomers_and_leaves_out_others(bundle, sample_log):
    listed = pd.DataFrame({"customer_id": ["new-1", "00004", "new-2"]})
    scores = predict.score_transactions(bundle, sample_log, horizon=10, customers=listed)
    assert scores["customer_id"].tolist() == ["new-1", "00004", "new-2"]
    assert scores["has_history"].tolist() == [False, True, False]
    new = scores[~scores["has_history"]]
    assert (new["p_alive"] == 1.0).all()  # a BG/NBD newcomer is alive by definition
    np.testing.assert_allclose(new["expected_avg_value"], bundle.spend.population_mean)
    r, alpha = bundle.purchase.params["r"], bundle.purchase.params["alpha"]
    np.testing.assert_allclose(new["p_no_purchase"], (alpha / (alpha + 10)) ** r)


def test_horizon_units_are_interchangeable(bundle, sample_log):
    weeks = predict.score_transactions(bundle, sample_log, horizon=4, time_unit="week")
    days = predict.score_transactions(bundle, sample_log, horizon=28, time_unit="day")
    np.testing.assert_allclose(weeks["expected_purchases"], days["expected_purchases"], rtol=1e-12)
    np.testing.assert_allclose(weeks["clv"], days["clv"], rtol=1e-12)  # no discounting


def test_chunked_scoring_equals_one_pass_and_reports_progress(bundle, sample_log, monkeypatch):
    whole = predict.score_transactions(bundle, sample_log, horizon=26, discount_rate=0.01)
    calls = []
    monkeypatch.setattr(importlib.import_module("clv.predict.outputs"), "CHUNK_SIZE", 500)
    chunked = predict.score_transactions(
        bundle,
        sample_log,
        horizon=26,
        discount_rate=0.01,
        progress=lambda d, t: calls.append((d, t)),
    )
    pd.testing.assert_frame_equal(whole, chunked)
    patterns = len(
        predict.customer_features(bundle, sample_log)[
            ["frequency", "recency", "T"]
        ].drop_duplicates()
    )
    assert patterns < 2357  # scoring works once per (x, t_x, T) pattern
    assert calls == [(500, patterns), (1000, patterns), (patterns, patterns)]


def test_rfm_frames_score_through_the_same_path(bundle, sample_log):
    rfm = predict.customer_features(bundle, sample_log)
    from_rfm = predict.score_rfm(bundle, rfm, horizon=13)
    from_log = predict.score_transactions(bundle, sample_log, horizon=13)
    pd.testing.assert_frame_equal(from_rfm, from_log)


def test_a_log_without_amounts_gets_no_value_columns(bundle, sample_log):
    log = load_transactions("cdnow-sample", DataConfig(amount_col=None))
    scores = predict.score_transactions(bundle, log, horizon=13)
    assert "clv" not in scores and "monetary_value" not in scores
    assert "p_no_purchase" in scores


def _with_segments(bundle: Bundle, log, tiers=None, rest="rest") -> Bundle:
    """The bundle with tiers fixed on the sample's population as of its last day."""
    population = predict.customer_features(bundle, log)
    return replace(bundle, segments=predict.define_segments(bundle, population, tiers, rest))


def test_value_segments_follow_the_configured_tiers(bundle, sample_log):
    tiered = _with_segments(bundle, sample_log, {"gold": 0.05, "silver": 0.15}, "bronze")
    scores = predict.score_transactions(tiered, sample_log, horizon=52)
    counts = scores["value_segment"].value_counts()
    assert counts["gold"] == 118 and counts["silver"] == 354 and counts["bronze"] == 2357 - 472
    assert (
        scores.loc[scores["value_segment"] == "gold", "clv"].min()
        >= scores.loc[scores["value_segment"] == "silver", "clv"].max()
    )


def test_a_customers_segment_does_not_depend_on_the_list(bundle, sample_log, tmp_path):
    tiered = _with_segments(bundle, sample_log)
    everyone = predict.score_transactions(tiered, sample_log, horizon=52).set_index("customer_id")
    top = everyone.sort_values("clv", ascending=False).index
    ids = [top[0], top[300], top[600], top[1000], top[2000], "never-seen"]
    listed = pd.DataFrame({"customer_id": ids})
    alone = predict.score_transactions(tiered, sample_log, horizon=52, customers=listed)
    assert alone["value_segment"].tolist()[:5] == everyone.loc[ids[:5], "value_segment"].tolist()
    assert alone["value_segment"].tolist()[:5] == ["top", "high", "high", "rest", "rest"]
    # another horizon, unit and discount rate: the segment is still the training definition's
    other = predict.score_transactions(
        tiered, sample_log, horizon=3, time_unit="month", discount_rate=0.01, margin=0.2
    ).set_index("customer_id")
    pd.testing.assert_series_equal(other["value_segment"], everyone["value_segment"])
    # and a round trip through the bundle's JSON keeps the thresholds
    from clv.bundle import load_bundle, save_bundle

    reloaded = load_bundle(save_bundle(tiered, tmp_path / "b"))
    assert reloaded.segments == tiered.segments


def test_a_bundle_without_thresholds_ranks_the_list_and_says_so(bundle, sample_log):
    with pytest.warns(UserWarning, match="no stored segment thresholds"):
        scores = predict.score_transactions(replace(bundle, segments={}), sample_log, horizon=52)
    assert (scores["value_segment"] == "top").sum() == 236


def test_recency_and_age_are_in_the_scoring_unit(bundle, sample_log):
    weeks = predict.score_transactions(_with_segments(bundle, sample_log), sample_log, horizon=4)
    months = predict.score_transactions(
        _with_segments(bundle, sample_log), sample_log, horizon=1, time_unit="month"
    )
    factor = 7.0 / (365.25 / 12.0)
    np.testing.assert_allclose(months["T"], weeks["T"] * factor, rtol=1e-12)
    np.testing.assert_allclose(months["recency"], weeks["recency"] * factor, rtol=1e-12)


def test_an_impossible_rfm_row_is_named(bundle):
    rfm = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "frequency": [1, 2],
            "recency": [3.0, 9.0],
            "T": [5.0, 4.0],
            "monetary_value": [1.0, 2.0],
        }
    )
    with pytest.raises(
        DataValidationError,
        match=r"1 row\(s\) where recency is negative or above T, e\.g\. customer 'b'",
    ):
        predict.score_rfm(bundle, rfm, horizon=1)
