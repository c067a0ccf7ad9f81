"""Scores taken once per distinct history (:meth:`PurchaseModel._each_history`) equal the
model's mathematics evaluated customer by customer, for every model whose scores are costly
(Pareto/NBD, GG/NBD, MBG/CNBD-k at k ≥ 2), with repeated histories, broadcast shapes and one
history; and :func:`distinct_histories` gives back every history exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clv.models.fitted import PurchaseModel
from clv.models.patterns import distinct_histories

MODELS = {
    "pareto": {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669},
    "ggomnbd": {"r": 0.7, "alpha": 5.0, "b": 0.02, "s": 0.4, "beta": 0.3},
    "mbgcnbd": {"k": 2.0, "r": 1.33, "alpha": 2.81, "a": 0.42, "b": 0.79},
}


def _histories(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` customers drawn from 40 distinct histories: each repeats many times."""
    rng = np.random.default_rng(seed)
    T = rng.choice([10.0, 26.0, 39.0, 52.0], 40)
    x = rng.integers(0, 12, 40).astype(float)
    t_x = np.where(x > 0, np.round(rng.uniform(0, 1, 40) * T, 1), 0.0)
    pick = rng.integers(0, 40, n)
    return x[pick], t_x[pick], T[pick]


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_scores_once_per_distinct_history_equal_each_customers(kind):
    model = PurchaseModel(kind, MODELS[kind], "week")
    process, params = model.process, model.params
    assert process.costly_scores(params)
    x, t_x, T = _histories(500)
    np.testing.assert_array_equal(
        model.p_alive(x, t_x, T),
        np.clip(1.0 / (1.0 + np.exp(process.log_odds_dead(params, x, t_x, T))), 0.0, 1.0),
    )
    np.testing.assert_allclose(
        model.expected_purchases(13.0, x, t_x, T),
        process.expected_purchases(params, 13.0, x, t_x, T),
        rtol=1e-13,
    )
    np.testing.assert_allclose(
        model.p_no_purchase(13.0, x, t_x, T),
        process.p_no_purchase(params, 13.0, x, t_x, T),
        rtol=1e-13,
    )
    pmf = model.purchase_pmf(13.0, x, t_x, T, 6)
    assert pmf.shape == (500, 7)
    np.testing.assert_allclose(pmf, process.purchase_pmf(params, 13.0, x, t_x, T, 6), rtol=1e-13)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_per_pattern_scores_keep_the_callers_shape(kind):
    model = PurchaseModel(kind, MODELS[kind], "week")
    grid = model.p_alive(np.array([[0.0], [2.0], [2.0]]), np.array([[0.0], [5.0], [5.0]]), 20.0)
    assert grid.shape == (3, 1) and grid[1, 0] == grid[2, 0] and grid[0, 0] > grid[1, 0]
    one = model.expected_purchases(10.0, 2.0, 5.0, 20.0)
    assert np.shape(one) == () and one > 0
    table = model.expected_purchases(10.0, np.full((2, 3), 2.0), 5.0, np.array([20.0, 30, 40]))
    assert table.shape == (2, 3) and (table[0] == table[1]).all() and table[0, 0] > table[0, 2]


def test_mbgcnbd_at_k1_keeps_mbgnbds_closed_forms():
    model = PurchaseModel("mbgcnbd", MODELS["mbgcnbd"] | {"k": 1.0}, "week")
    assert not model.process.costly_scores(model.params)
    x, t_x, T = _histories(50)
    mbg = PurchaseModel(
        "mbgnbd", {n: MODELS["mbgcnbd"][n] for n in ["r", "alpha", "a", "b"]}, "week"
    )
    np.testing.assert_allclose(
        model.expected_purchases(13.0, x, t_x, T), mbg.expected_purchases(13.0, x, t_x, T)
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 5), st.sampled_from([0.0, 0.5, 1.25]), st.sampled_from([1.0, 2.5])
        ),
        min_size=1,
        max_size=40,
    )
)
def test_distinct_histories_give_back_every_history(rows):
    x, t_x, T = (np.array(c, dtype=float) for c in zip(*rows, strict=True))
    which, dx, dt, dT = distinct_histories(x, t_x, T)
    np.testing.assert_array_equal(dx[which], x)
    np.testing.assert_array_equal(dt[which], t_x)
    np.testing.assert_array_equal(dT[which], T)
    assert len(set(zip(dx, dt, dT, strict=True))) == len(dx) == len(set(rows))
