"""The ensemble candidate: an equal-weight mixture of BG/NBD, MBG/NBD and Pareto/NBD."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import clv.predict as predict
from clv.bundle import Bundle, load_bundle, save_bundle
from clv.config import Config
from clv.evaluation import churn_metrics, evaluate
from clv.models.ensemble import EnsembleModel
from clv.models.fitting import fit_purchase_model
from clv.models.gamma_gamma import fit_spend_model


@pytest.fixture(scope="module")
def members(sample_split):
    return {k: fit_purchase_model(k, sample_split, "week") for k in ("bgnbd", "mbgnbd", "pareto")}


def test_every_score_quantity_is_the_members_mean(members, sample_split):
    ensemble = fit_purchase_model("ensemble", sample_split, "week")
    assert isinstance(ensemble, EnsembleModel)
    x, t_x, T = (sample_split[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    for method, args in (
        ("p_alive", (x, t_x, T)),
        ("expected_purchases", (39.0, x, t_x, T)),
        ("p_no_purchase", (39.0, x, t_x, T)),
    ):
        mean = np.mean([getattr(m, method)(*args) for m in members.values()], axis=0)
        np.testing.assert_allclose(getattr(ensemble, method)(*args), mean, rtol=1e-12)
    assert set(ensemble.params) == {f"{k}.{p}" for k, m in members.items() for p in m.params}


def test_an_ensemble_bundle_scores_after_a_json_round_trip(
    members, sample_split, sample_log, tmp_path
):
    ensemble = EnsembleModel(tuple(members.values()))
    bundle = Bundle(ensemble, fit_spend_model(sample_split), config={}, fingerprint={})
    bundle = replace(bundle, segments=predict.define_segments(bundle, sample_split))
    loaded = load_bundle(save_bundle(bundle, tmp_path / "b"))
    assert isinstance(loaded.purchase, EnsembleModel)
    assert [m.params for m in loaded.purchase.members] == [m.params for m in members.values()]
    a = predict.score_transactions(bundle, sample_log, horizon=26, discount_rate=0.002)
    b = predict.score_transactions(loaded, sample_log, horizon=26, discount_rate=0.002)
    pd.testing.assert_frame_equal(a, b)
    single = predict.score_transactions(
        replace(bundle, purchase=members["pareto"]), sample_log, horizon=26
    )
    assert not np.allclose(single["expected_purchases"], a["expected_purchases"])


def test_the_ensemble_is_evaluated_and_selectable_like_any_candidate(sample_log):
    config = Config().with_overrides(
        {
            "train.calibration_end": pd.Timestamp("1997-09-30").date(),
            "train.candidates": ["bgnbd", "mbgnbd", "pareto", "ensemble"],
        }
    )
    ev = evaluate(sample_log, config)
    card = ev.scorecard["purchases"]
    assert {"bgnbd", "mbgnbd", "pareto", "ensemble"} <= set(card)
    # the mixture's total is the members' mean total (expectations are linear)
    totals = [card[k]["predicted_total"] for k in ("bgnbd", "mbgnbd", "pareto")]
    assert card["ensemble"]["predicted_total"] == pytest.approx(np.mean(totals), rel=1e-12)
    means = ev.scorecard["selection"]["mean_loss"]  # one window here: its deviances
    assert means == {k: card[k]["poisson_deviance"] for k in ev.purchase_models}
    assert ev.best_purchase_model == min(means, key=means.get)
    assert ev.purchase_models["ensemble"].members[2] is ev.purchase_models["pareto"]


def test_the_scorecard_reuses_the_members_values_to_the_bit(sample_log):
    """The evaluation takes the ensemble's forecasts and P(no purchase) as the mean of its
    members' values it has already computed: the same numbers as the ensemble's own methods."""
    config = Config().with_overrides({"train.calibration_end": pd.Timestamp("1997-09-30").date()})
    ev = evaluate(sample_log, config)
    ensemble = ev.purchase_models["ensemble"]
    cal = ev.calibration
    x, t_x, T = (cal[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    duration = ev.split.duration
    own = ensemble.expected_purchases(duration, x, t_x, T)
    assert np.array_equal(ev.predictions["ensemble"], own)
    frame = ev.churn_frame
    H = ev.scorecard["churn_protocol"]["horizon"]
    assert frame["customer_id"].tolist() == cal["customer_id"].tolist()  # the same customers
    expected = churn_metrics(frame["churned"].to_numpy(), ensemble.p_no_purchase(H, x, t_x, T))
    assert ev.scorecard["churn"]["ensemble_p_no_purchase"] == expected
    # a member that is another fit (or missing) is not reused
    refit = dict(ev.purchase_models, pareto=fit_purchase_model("pareto", cal, "week"))
    assert ensemble.mean_of(refit, ev.predictions) is None
    assert ensemble.mean_of(ev.purchase_models, {"bgnbd": own}) is None


def test_nested_models_at_their_limits_compete_once(sample_log):
    """The default candidates on the papers' split: GG/NBD's fit is Pareto/NBD's (b → 0) and
    MBG/CNBD-k's is MBG/NBD's (k = 1); the larger competes for both, the smaller stays fitted
    as a member of the ensemble, and the forecasts of each pair agree to rounding."""
    config = Config().with_overrides({"train.calibration_end": pd.Timestamp("1997-09-30").date()})
    ev = evaluate(sample_log, config)
    assert ev.scorecard["same_as"] == {"pareto": "ggomnbd", "mbgnbd": "mbgcnbd"}
    assert {"pareto", "mbgnbd"}.isdisjoint(ev.purchase_models)
    assert {"pareto", "mbgnbd"}.isdisjoint(ev.scorecard["purchases"])
    assert ev.purchase_models["mbgcnbd"].params["k"] == 1.0
    ensemble = ev.purchase_models["ensemble"]
    assert [m.kind for m in ensemble.members] == ["bgnbd", "mbgnbd", "pareto"]
    cal = ev.calibration
    x, t_x, T = (cal[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    duration = ev.split.duration
    for member, larger in zip(ensemble.members[1:], ("mbgcnbd", "ggomnbd"), strict=True):
        np.testing.assert_allclose(
            ev.predictions[larger], member.expected_purchases(duration, x, t_x, T), rtol=1e-6
        )


def test_an_edge_fit_starts_only_the_model_that_refits_it_first():
    """GG/NBD refits Pareto/NBD first, so Pareto/NBD's fit starts it even at an edge;
    MBG/CNBD-k starts from MBG/NBD's fit only when it is interior; a no-dropout limit (the
    NBD's parameters) starts nothing."""
    from clv.evaluation.candidates import nested_start
    from clv.models.fitted import PurchaseModel

    pareto = {"r": 0.51, "alpha": 8.4, "s": 1e4, "beta": 1.7e5}
    mbg = {"r": 0.5, "alpha": 6.0, "a": 1e4, "b": 3e4}
    edge = {
        "pareto": PurchaseModel("pareto", pareto, "week", homogeneous=("dropout",)),
        "mbgnbd": PurchaseModel("mbgnbd", mbg, "week", homogeneous=("dropout",)),
    }
    assert nested_start("ggomnbd", edge) == pareto
    assert nested_start("mbgcnbd", edge) is None
    interior = {"mbgnbd": PurchaseModel("mbgnbd", mbg | {"a": 0.9, "b": 2.4}, "week")}
    assert nested_start("mbgcnbd", interior) == mbg | {"a": 0.9, "b": 2.4}
    nbd = {"pareto": PurchaseModel("nbd", {"r": 0.5, "alpha": 8.0}, "week", limit_of="pareto")}
    assert nested_start("ggomnbd", nbd) is None
    assert nested_start("bgnbd", edge) is None
