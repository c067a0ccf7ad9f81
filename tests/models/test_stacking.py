"""The stacked candidate and the rolling origin: weights that maximise the holdout log score,
scores that are never in-sample, and a choice made on more than one holdout window."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import poisson

import clv.predict as predict
from clv.bundle import Bundle, load_bundle, save_bundle
from clv.config import Config
from clv.evaluation import evaluate, mix
from clv.models.ensemble import EnsembleModel, stack_weights
from clv.models.fitting import fit_purchase_model, purchase_model_from_dict
from clv.models.gamma_gamma import fit_spend_model
from clv.origins import Window, mean_loss, wins
from clv.training import train


def _objective(d: np.ndarray, w: np.ndarray) -> float:
    return float(np.mean(np.log(d @ w)))


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        float,
        st.tuples(st.integers(3, 40), st.integers(2, 5)),
        elements=st.floats(1e-6, 1.0),
    )
)
def test_stacking_weights_are_on_the_simplex_and_beat_every_member_and_equal_weights(d):
    w = stack_weights(d)
    assert np.all(w >= 0) and w.sum() == pytest.approx(1.0)
    best = _objective(d, w)
    models = d.shape[1]
    for m in range(models):  # each member alone is a vertex of the simplex
        assert best >= _objective(d, np.eye(models)[m]) - 1e-9
    assert best >= _objective(d, np.full(models, 1 / models)) - 1e-9


def test_stacking_recovers_the_share_of_each_model_in_a_mixed_population():
    """Outcomes drawn from Poisson(1) for 30 % of customers and Poisson(4) for the rest: the
    log-score-optimal mixture of the two predictive distributions is 0.3 / 0.7."""
    rng = np.random.default_rng(7)
    n = 40_000
    low = rng.random(n) < 0.3
    k = np.where(low, rng.poisson(1.0, n), rng.poisson(4.0, n))
    densities = np.column_stack([poisson.pmf(k, 1.0), poisson.pmf(k, 4.0)])
    np.testing.assert_allclose(stack_weights(densities), [0.3, 0.7], atol=0.02)
    # counts of patterns give the same weights as one row a customer
    patterns, counts = np.unique(k, return_counts=True)
    grouped = np.column_stack([poisson.pmf(patterns, 1.0), poisson.pmf(patterns, 4.0)])
    np.testing.assert_allclose(stack_weights(grouped, counts), stack_weights(densities), atol=1e-6)


@pytest.fixture(scope="module")
def members(sample_split):
    return tuple(fit_purchase_model(k, sample_split, "week") for k in ("bgnbd", "pareto"))


def test_a_stacked_mixture_is_its_members_weighted_and_survives_a_json_round_trip(
    members, sample_split, sample_log, tmp_path
):
    stacked = EnsembleModel(members, kind="stacked", weights=(0.2, 0.8))
    x, t_x, T = (sample_split[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    for method, args in (
        ("p_alive", (x, t_x, T)),
        ("expected_purchases", (39.0, x, t_x, T)),
        ("p_no_purchase", (39.0, x, t_x, T)),
        ("purchase_pmf", (39.0, x, t_x, T, 12)),
    ):
        a, b = (getattr(m, method)(*args) for m in members)
        np.testing.assert_allclose(getattr(stacked, method)(*args), 0.2 * a + 0.8 * b, rtol=1e-12)
    assert stacked.params["pareto.weight"] == 0.8
    assert purchase_model_from_dict(stacked.to_dict()) == stacked
    bundle = Bundle(stacked, fit_spend_model(sample_split), config={}, fingerprint={})
    bundle = replace(bundle, segments=predict.define_segments(bundle, sample_split))
    loaded = load_bundle(save_bundle(bundle, tmp_path / "b"))
    assert loaded.purchase.kind == "stacked" and loaded.purchase.weights == (0.2, 0.8)
    pd.testing.assert_frame_equal(
        predict.score_transactions(bundle, sample_log, horizon=26),
        predict.score_transactions(loaded, sample_log, horizon=26),
    )


@pytest.mark.parametrize("weights", [(0.5, 0.6), (-0.1, 1.1), (1.0,)])
def test_mixture_weights_must_be_one_per_member_on_the_simplex(members, weights):
    with pytest.raises(ValueError, match="summing to 1"):
        EnsembleModel(members, kind="stacked", weights=weights)


def _window(actual, **predictions):
    return Window(
        pd.Timestamp("2024-01-01"),
        pd.Timestamp("2024-04-01"),
        13.0,
        np.asarray(actual, dtype=float),
        predictions={k: np.asarray(v, dtype=float) for k, v in predictions.items()},
    )


def test_a_candidate_missing_from_a_window_is_compared_through_the_others():
    """``c`` was scored on the easy window only: its mean loss is put on the others' footing
    (its gap to them there, plus their mean over both windows), not flattered by the easy
    window's level."""
    easy = _window([1, 1], a=[1, 1], b=[2, 2], c=[1.5, 1.5], naive=[1, 1])
    hard = _window([0, 4], a=[2, 2], b=[3, 3], naive=[2, 2])
    losses = mean_loss([easy, hard], "rmse")
    assert losses["a"] == pytest.approx((0.0 + 2.0) / 2)
    assert losses["b"] == pytest.approx((1.0 + np.sqrt(5)) / 2)
    reference = (0.5 + (2.0 + np.sqrt(5)) / 2) / 2  # mean of a and b, over both windows
    assert losses["c"] == pytest.approx(reference + 0.5 - 0.5)
    assert wins([easy, hard], "rmse", ["a", "b", "c"]) == {"a": 2, "b": 0}


@pytest.fixture(scope="module")
def two_windows(sample_log):
    """The CDNOW sample judged on the last 13 weeks and the 13 before them."""
    return evaluate(sample_log, Config().with_overrides({"train.holdout": 13}))


def test_the_choice_rests_on_the_mean_over_two_holdout_windows(two_windows):
    ev = two_windows
    selection = ev.scorecard["selection"]
    latest, earlier = selection["windows"]
    assert earlier["observation_end"] == latest["calibration_end"]  # back to back
    assert latest["customers"] == len(ev.calibration) == earlier["customers"]  # one cohort
    candidates = set(ev.purchase_models)
    assert {"bgnbd", "ensemble", "stacked"} <= candidates
    for kind in candidates:
        both = [w["poisson_deviance"][kind] for w in (latest, earlier)]
        assert selection["mean_loss"][kind] == pytest.approx(np.mean(both))
        assert latest["poisson_deviance"][kind] == pytest.approx(
            ev.scorecard["purchases"][kind]["poisson_deviance"]
        )
    means = selection["mean_loss"]
    assert ev.best_purchase_model == min(ev.purchase_models, key=means.__getitem__)
    assert sum(selection["wins"].values()) == 2
    assert "rolling_origin" not in ev.scorecard.get("skipped", {})


def test_stacked_forecasts_are_cross_fitted_never_in_sample(two_windows):
    """Each window's stacked forecast uses the weights fitted on the other window; the
    shipped mixture has the weights fitted on both."""
    ev = two_windows
    stacking = ev.scorecard["stacking"]
    kinds = list(stacking["weights"])
    for weights in [stacking["weights"], *stacking["fold_weights"]]:
        assert sum(weights.values()) == pytest.approx(1.0)
    crossed = np.array([stacking["fold_weights"][0][k] for k in kinds])
    np.testing.assert_allclose(ev.predictions["stacked"], mix(ev.predictions, kinds, crossed))
    shipped = ev.purchase_models["stacked"]
    assert dict(zip([m.kind for m in shipped.members], shipped.weights, strict=True)) == {
        k: pytest.approx(w) for k, w in stacking["weights"].items() if w > 0
    }
    scores = stacking["log_score"]
    assert all(np.isfinite(v) and v < 0 for v in scores.values())


def test_one_window_cross_fits_over_halves_of_the_customers(sample_log):
    """On the papers' split (39 weeks from 1997-09-30) there is no room for a second window:
    the stage is skipped with its reason, and the stacked forecast of each customer uses the
    weights fitted on the other half of the customers."""
    config = Config().with_overrides({"train.calibration_end": pd.Timestamp("1997-09-30").date()})
    ev = evaluate(sample_log, config)
    assert (
        "too short for a second holdout window"
        in ev.scorecard["skipped"]["rolling_origin"]["reason"]
    )
    assert len(ev.scorecard["selection"]["windows"]) == 1
    stacking = ev.scorecard["stacking"]
    kinds = list(stacking["weights"])
    halves = [np.array([w[k] for k in kinds]) for w in stacking["fold_weights"]]
    fold = np.random.default_rng(config.train.seed).integers(0, 2, len(ev.calibration))
    expected = np.where(
        fold == 0, mix(ev.predictions, kinds, halves[0]), mix(ev.predictions, kinds, halves[1])
    )
    np.testing.assert_allclose(ev.predictions["stacked"], expected)


def test_a_stacked_choice_ships_its_members_refitted_on_the_whole_log(tmp_path):
    """The CDNOW sample on the papers' split chooses the stacked mixture (a published log:
    BG/NBD and Pareto/NBD each right about different customers); training refits its members
    on the whole log and keeps the weights; the bundle scores."""
    config = Config().with_overrides(
        {
            "data.transactions": "cdnow-sample",
            "train.calibration_end": pd.Timestamp("1997-09-30").date(),
            "train.model_dir": str(tmp_path / "model"),
            "mlflow.enabled": False,
        }
    )
    result = train(config)
    shipped, card = result.bundle.purchase, result.bundle.scorecard
    assert result.bundle.selection["chosen"] == "stacked"
    assert shipped.kind == "stacked"
    calibrated = result.evaluation.purchase_models["stacked"]
    assert shipped.weights == calibrated.weights
    for refitted, fitted in zip(shipped.members, calibrated.members, strict=True):
        assert refitted.kind == fitted.kind and refitted.params != fitted.params
    assert card["stacking"]["weights"] == pytest.approx(
        {m.kind: w for m, w in zip(shipped.members, shipped.weights, strict=True)}
        | {k: 0.0 for k, w in card["stacking"]["weights"].items() if w == 0}
    )
