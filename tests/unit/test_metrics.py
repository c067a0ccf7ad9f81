"""Scorecard metrics on hand-computed cases and against scikit-learn's definitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    roc_auc_score,
    roc_curve,
)

from clv import metrics


def test_purchase_metrics_by_hand():
    actual, predicted = [0, 1, 4], [1.0, 1.0, 2.0]
    assert metrics.mae(actual, predicted) == pytest.approx(1.0)
    assert metrics.rmse(actual, predicted) == pytest.approx(np.sqrt(5 / 3))
    assert metrics.aggregate_error_pct(actual, predicted) == pytest.approx(-20.0)
    assert metrics.spearman(actual, predicted) == pytest.approx(
        np.sqrt(3) / 2
    )  # ranks 1,2,3 vs 1.5,1.5,3


def test_gini_and_capture_by_hand():
    actual = [10, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert metrics.top_decile_capture(actual, np.arange(10)[::-1]) == 1.0
    assert metrics.top_decile_capture(actual, np.arange(10)) == 0.0
    assert metrics.normalized_gini(actual, np.arange(10)[::-1]) == pytest.approx(1.0)
    # the one buyer ranked in the middle (5th of 10): gain curve 0,0,0,0,1,...
    middle = [0, 0, 0, 0, 10, 0, 0, 0, 0, 0]
    gini = (6 / 10 - 11 / 20) / (1 - 11 / 20)
    assert metrics.normalized_gini(middle, np.arange(10)[::-1]) == pytest.approx(gini)


def test_decile_table_orders_from_the_top():
    table = metrics.decile_table(np.arange(20), np.arange(20), groups=10)
    assert table["decile"].tolist() == list(range(1, 11))
    assert table["mean_actual"].tolist() == [18.5, 16.5, 14.5, 12.5, 10.5, 8.5, 6.5, 4.5, 2.5, 0.5]
    assert (table["customers"] == 2).all()


def test_reliability_and_ece_by_hand():
    labels, probs = [0, 0, 1, 1], [0.1, 0.1, 0.9, 0.7]
    curve = metrics.reliability_curve(labels, probs)
    assert curve["bin"].tolist() == [1, 7, 9]
    assert metrics.expected_calibration_error(labels, probs) == pytest.approx(
        0.5 * 0.1 + 0.25 * 0.3 + 0.25 * 0.1
    )


cases = st.lists(st.tuples(st.integers(0, 1), st.integers(0, 20)), min_size=2, max_size=80).filter(
    lambda rows: 0 < sum(r[0] for r in rows) < len(rows)
)


@settings(max_examples=80, deadline=None)
@given(rows=cases)
def test_churn_metrics_equal_scikit_learn(rows):
    labels = np.array([r[0] for r in rows])
    scores = np.array([r[1] / 20 for r in rows])
    assert metrics.roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    assert metrics.brier(labels, scores) == pytest.approx(brier_score_loss(labels, scores))
    assert metrics.pr_auc(labels, scores) == pytest.approx(average_precision_score(labels, scores))
    # one sort serves both areas, and the plot draws scikit-learn's ROC corners
    fpr, tpr = metrics.roc_points(metrics.threshold_counts(labels, scores))
    ref_fpr, ref_tpr, _ = roc_curve(labels, scores)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)


def test_areas_without_both_classes_are_nan():
    assert np.isnan(metrics.roc_auc([1, 1], [0.2, 0.3]))
    assert np.isnan(metrics.roc_auc([0, 0], [0.2, 0.3]))
    assert np.isnan(metrics.pr_auc([0, 0], [0.2, 0.3]))
    assert metrics.pr_auc([1, 1], [0.2, 0.3]) == 1.0
    assert np.isnan(metrics.roc_auc([], [])) and np.isnan(metrics.pr_auc([], []))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=2, max_size=60),
    st.lists(st.integers(0, 3), min_size=60, max_size=60),
)
def test_outcomes_ranked_once_score_as_the_plain_arrays_do(actual, predicted):
    """clv.metrics.Actual (ranks and best ordering kept for several forecasts) changes no
    number, ties included."""
    from clv.evaluation import purchase_metrics, value_metrics

    a = np.array(actual, dtype=float)
    p = np.array(predicted[: len(actual)], dtype=float) / 2
    ranked = metrics.Actual(a)
    for score in (purchase_metrics, value_metrics):
        plain, shared = score(a, p), score(ranked, p)
        assert plain.keys() == shared.keys()
        for key in plain:
            assert plain[key] == shared[key] or (np.isnan(plain[key]) and np.isnan(shared[key]))


#: Ties, sums equal but for their last bits, values that settle across a power of ten.
TIES_AND_EDGES = [0.0, -0.0, 0.1, 0.2, 0.1 + 0.2, 0.3, 1.5, 7.0, -2.0, 9.9999999999995, 10.0]
TIES_AND_EDGES += [9.99999999999949, 1e-300, np.inf, -np.inf, np.nan]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from(TIES_AND_EDGES),
        max_size=60,
    )
)
def test_one_sort_gives_the_order_and_the_average_ranks(values):
    """metrics.ordering, highest_first and the ranks equal their definitions — a stable sort of
    the settled values, highest first, and pandas' average ranks of them — with ties, sums that
    differ only in their last bits, values that settle across a power of ten, infinities and
    NaN included."""
    values = np.array(values, dtype=float)
    order = np.argsort(-metrics.settled(values), kind="stable")
    ranks = pd.Series(metrics.settled(values)).rank().to_numpy()
    found = metrics.ordering(values)
    np.testing.assert_array_equal(found.order, order)
    np.testing.assert_array_equal(metrics.highest_first(values), order)
    np.testing.assert_array_equal(found.ranks, ranks)
    np.testing.assert_array_equal(metrics.Actual(values).ranks, ranks)


def test_settled_values_are_those_of_the_plain_formula_at_every_magnitude():
    """settled() takes its powers of ten from a table: to the bit the values of
    round(v × 10**p) / 10**p, p = 11 − floor(log10 |v|), from 1e308 down to where 10**p
    overflows; below it (to 5e-324) still finite, positive and 12 digits apart at most."""
    rng = np.random.default_rng(3)
    v = 10.0 ** rng.uniform(-297, 308, 200_000) * rng.choice([-1.0, 1.0], 200_000)
    v = np.r_[v, rng.gamma(1.0, 1.0, 100_000), 0.0, -0.0, np.inf, -np.inf, 1.7976931348623157e308]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        p = 11 - np.where(np.isfinite(np.log10(np.abs(v))), np.floor(np.log10(np.abs(v))), 0)
        expected = np.round(v * 10.0**p) / 10.0**p
    np.testing.assert_array_equal(metrics.settled(v), expected)
    tiny = 10.0 ** rng.uniform(-323.3, -297, 10_000)
    found = metrics.settled(tiny)
    assert np.all(found > 0) and np.all(np.isfinite(found))
    normal = tiny > 2.3e-308  # subnormals have fewer than 12 digits of their own
    np.testing.assert_allclose(found[normal], tiny[normal], rtol=1e-11)
