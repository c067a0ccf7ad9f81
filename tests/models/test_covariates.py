"""Static covariates in the purchase models (clv.models.covariates).

References: CLVTools' fits with the apparel data's static covariates (gender and channel on both
processes, 104-week estimation split), produced once by ``tests/data/clvtools_staticcov.R``
(CLVTools at commit 1b06356; its vignette's quoted values belong to an older 250-customer
version of the data). With CLVTools' default optimizer settings it prints LL −5821.0627 and
coefficients to 4 digits of a flat optimum; run to convergence it gives the values below, which
ours equal. Invariants: no covariates → the plain model; the chain-rule gradient against
differences; parameters recovered from simulated customers.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from clv.config import Config
from clv.data import load_transactions, read_customer_list
from clv.errors import DataValidationError
from clv.models.covariate_model import (
    CovariateModel,
    CovariateProcess,
    GroupedPatterns,
    fit_covariate_model,
)
from clv.models.covariates import CovariateDesign
from clv.models.fitting import fit_purchase_model
from clv.models.optimize import central_gradient
from clv.models.registry import PURCHASE_MODELS

SPLIT = pd.Timestamp("2006-12-31")  # apparel's first day + 104 weeks
# CLVTools, L-BFGS-B to convergence (factr = 1, pgtol = 0)
CLVTOOLS_PNBD = {
    "r": 1.838963506694,
    "alpha": 92.962825111482,
    "s": 0.591303263363,
    "beta": 49.512984343617,
    "dropout.gender": -0.641870198764,
    "dropout.channel": 0.789759192670,
    "purchase.gender": 0.286135693667,
    "purchase.channel": 0.623930020763,
}
CLVTOOLS_PNBD_LL = -5821.06268587
CLVTOOLS_PNBD_SE = {
    "r": 0.345765026290,
    "alpha": 16.979213324330,
    "s": 0.260263160684,
    "beta": 36.143158710898,
    "dropout.gender": 0.295500017812,
    "dropout.channel": 0.305781535854,
    "purchase.gender": 0.104139438048,
    "purchase.channel": 0.104941858227,
}
# reg.lambdas = c(trans = 0.1, life = 0.5)
CLVTOOLS_PNBD_L2 = {
    "r": 1.7373079425491,
    "alpha": 69.8407285631828,
    "s": 0.5204361398668,
    "beta": 38.5769946986976,
    "dropout.gender": -0.0181559077624,
    "dropout.channel": 0.0101001337214,
    "purchase.gender": 0.1735540442084,
    "purchase.channel": 0.2357411404118,
}
CLVTOOLS_GGOMNBD_LL = -5821.0626886
CLVTOOLS_BGNBD_LL = -5839.86348467


@pytest.fixture(scope="module")
def apparel_rfm(apparel_dir):
    config = Config().with_overrides({"data.transactions": str(apparel_dir / "transactions.csv")})
    log = load_transactions(config.data.transactions, config.data, as_of=SPLIT)
    from clv.features import build_rfm

    rfm = build_rfm(log.compact, SPLIT, "week")
    customers = read_customer_list(apparel_dir / "customers.csv", "customer_id")
    rfm = rfm.merge(customers, on="customer_id", how="left", validate="one_to_one")
    design = CovariateDesign.learn(rfm, ["gender", "channel"], ["gender", "channel"])
    return rfm, design, design.encode(rfm, rfm["customer_id"])


def _values(model: CovariateModel) -> dict[str, float]:
    return {**model.params, **model.coefficients}


def test_pareto_nbd_with_covariates_reproduces_clvtools(apparel_rfm):
    rfm, design, z = apparel_rfm
    model, converged = fit_covariate_model("pareto", rfm, z, design, "week")
    assert converged
    assert model.log_likelihood == pytest.approx(CLVTOOLS_PNBD_LL, abs=1e-6)
    assert round(model.log_likelihood, 4) == -5821.0627  # CLVTools' printed summary
    values = _values(model)
    for name, reference in CLVTOOLS_PNBD.items():
        assert values[name] == pytest.approx(reference, rel=2e-4, abs=1e-4), name
    for name, reference in CLVTOOLS_PNBD_SE.items():
        assert model.standard_errors[name] == pytest.approx(reference, rel=2e-3), name


def test_l2_penalty_per_process_reproduces_clvtools(apparel_rfm):
    rfm, design, z = apparel_rfm
    model, converged = fit_covariate_model(
        "pareto", rfm, z, design, "week", l2={"purchase": 0.1, "dropout": 0.5}
    )
    assert converged
    values = _values(model)
    for name, reference in CLVTOOLS_PNBD_L2.items():
        assert values[name] == pytest.approx(reference, rel=1e-3, abs=1e-5), name


def test_gg_nbd_with_covariates_is_clvtools_pareto_limit(apparel_rfm):
    """CLVTools' GG/NBD fit runs to b → 0 here, the Pareto/NBD limit; so does ours."""
    rfm, design, z = apparel_rfm
    model, converged = fit_covariate_model("ggomnbd", rfm, z, design, "week")
    assert converged
    assert model.log_likelihood == pytest.approx(CLVTOOLS_GGOMNBD_LL, abs=1e-4)
    assert model.params["b"] < 1e-4
    for name in ("purchase.gender", "purchase.channel", "dropout.gender", "dropout.channel"):
        assert model.coefficients[name] == pytest.approx(CLVTOOLS_PNBD[name], abs=1e-3), name


def test_bg_nbd_with_covariates_is_at_least_as_likely_as_clvtools(apparel_rfm):
    """Both fits run a and b off to thousands (the data do not identify BG/NBD's dropout
    covariates); ours reaches CLVTools' likelihood, and the fitting code says it diverged."""
    rfm, design, z = apparel_rfm
    model, converged = fit_covariate_model("bgnbd", rfm, z, design, "week")
    assert model.log_likelihood >= CLVTOOLS_BGNBD_LL - 1e-3
    assert not converged
    assert model.params["a"] > 100 and model.params["b"] > 1000


def test_covariates_improve_the_apparel_likelihood_significantly(apparel_rfm):
    rfm, design, z = apparel_rfm
    model, _ = fit_covariate_model("pareto", rfm, z, design, "week")
    plain = fit_purchase_model("pareto", rfm, "week")
    statistic = 2 * (model.log_likelihood - plain.log_likelihood)
    assert statistic > 18.47  # χ²₄ at 0.1 %


@pytest.fixture(scope="module")
def cdnow_grouped(sample_split):
    """The CDNOW sample's calibration RFM with made-up attributes (3 channels, age by decade)."""
    rng = np.random.default_rng(3)
    rfm = sample_split.rename(
        columns={"frequency_cal": "frequency", "recency_cal": "recency", "T_cal": "T"}
    )[["frequency", "recency", "T"]]
    frame = rfm.assign(
        channel=rng.choice(["web", "store", "phone"], len(rfm)),
        age=rng.normal(40, 10, len(rfm)).round(-1),
    )
    design = CovariateDesign.learn(frame, ["channel", "age"], ["channel"], ["channel"])
    return frame, design, design.encode(frame)


@pytest.mark.parametrize("kind", ["bgnbd", "mbgnbd", "pareto", "ggomnbd"])
def test_no_covariate_effect_is_the_plain_model(cdnow_grouped, kind):
    frame, design, z = cdnow_grouped
    base = PURCHASE_MODELS[kind]
    process = CovariateProcess(base, design)
    data = GroupedPatterns.of(frame, z)
    plain = fit_purchase_model(kind, frame, "week")
    params = {**plain.params, **dict.fromkeys(design.coefficients, 0.0)}
    assert process.log_likelihood(params, data) == pytest.approx(plain.log_likelihood, rel=1e-10)
    model = CovariateModel(
        kind, plain.params, dict.fromkeys(design.coefficients, 0.0), design, "week"
    )
    group = model.for_group(z[17])
    for name, value in plain.params.items():
        assert group.params[name] == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("kind", ["bgnbd", "ggomnbd"])
def test_chain_rule_gradient_equals_differences(cdnow_grouped, kind):
    frame, design, z = cdnow_grouped
    process = CovariateProcess(PURCHASE_MODELS[kind], design, {"purchase": 0.3, "dropout": 0.1})
    data = GroupedPatterns.of(frame, z).scaled(1 / 39.0)
    prepared = process.prepare(data)
    rng = np.random.default_rng(0)
    point = np.concatenate(
        [
            rng.normal(-0.5, 0.3, len(process.base.params)),
            rng.normal(0, 0.2, len(design.coefficients)),
        ]
    )
    _, gradient = process.objective(point, data, 0.01, prepared)
    numeric = central_gradient(lambda p: process.objective(p, data, 0.01, prepared)[0], point)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-8)


def test_group_models_carry_the_coefficients(cdnow_grouped):
    """A group's model is the plain model at α·e^(−γᵀz), β·e^(−γᵀz), and its covariance is the
    fitted one through that linear map (its SE of log α grows with the coefficients')."""
    _, design, _ = cdnow_grouped
    coefficients = {"purchase.channel_store": 0.4, "purchase.channel_web": -0.2}
    coefficients |= {"purchase.age": 0.01, "dropout.channel_store": 0.3, "dropout.channel_web": 0}
    params = {"r": 0.5, "alpha": 10.0, "s": 0.6, "beta": 12.0}
    covariance = np.diag([0.01, 0.02, 0.03, 0.04, 0.001, 0.002, 0.0001, 0.005, 0.006])
    model = CovariateModel(
        "pareto_covariates",
        params,
        coefficients,
        design,
        "week",
        log_likelihood=-100.0,
        covariance=tuple(map(tuple, covariance)),
    )
    z = np.array([0.0, 1.0, 50.0])  # a web customer of 50 (phone is the reference level)
    assert design.columns == ("channel_store", "channel_web", "age")
    group = model.for_group(z)
    assert group.params["alpha"] == pytest.approx(10.0 * np.exp(0.2 - 0.5))
    assert group.params["beta"] == pytest.approx(12.0)
    assert group.params["r"] == 0.5 and group.params["s"] == 0.6
    var_log_alpha = 0.02 + 0.002 + 50**2 * 0.0001
    assert np.asarray(group.covariance)[1, 1] == pytest.approx(var_log_alpha)
    again = CovariateModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert again == model


def _simulate_pareto(rng, n, params, gamma_purchase, gamma_dropout):
    z = rng.integers(0, 2, n).astype(float)
    lam = rng.gamma(params["r"], 1 / (params["alpha"] * np.exp(-gamma_purchase * z)))
    mu = rng.gamma(params["s"], 1 / (params["beta"] * np.exp(-gamma_dropout * z)))
    T = rng.uniform(30, 78, n)
    alive_for = np.minimum(rng.exponential(1 / mu), T)
    x = rng.poisson(lam * alive_for)
    t_x = np.where(x > 0, alive_for * rng.uniform(size=n) ** (1 / np.maximum(x, 1)), 0.0)
    return pd.DataFrame({"frequency": x, "recency": t_x, "T": T, "online": z})


def test_simulated_covariate_effects_are_recovered():
    rng = np.random.default_rng(11)
    truth = {"r": 0.8, "alpha": 12.0, "s": 0.7, "beta": 15.0}
    frame = _simulate_pareto(rng, 6000, truth, 0.7, -0.8)
    design = CovariateDesign.learn(frame, ["online"], ["online"])
    model, converged = fit_covariate_model("pareto", frame, design.encode(frame), design, "week")
    assert converged
    expected = {**truth, "purchase.online": 0.7, "dropout.online": -0.8}
    for name, value in expected.items():
        assert abs(_values(model)[name] - value) < 4 * model.standard_errors[name], name


def test_design_errors_name_the_column_the_customers_and_an_example():
    frame = pd.DataFrame(
        {"customer_id": ["a", "b", "c", "d"], "tier": ["x", "y", None, "x"], "n": [1, 2, 3, 4]}
    )
    with pytest.raises(DataValidationError, match=r"'tier': 1 of 4 customers have no value.*c"):
        CovariateDesign.learn(frame, ["tier"], [], ["tier"]).encode(frame, frame["customer_id"])
    design = CovariateDesign.learn(frame.dropna(), ["tier", "n"], ["n"], ["tier"], {"tier": "y"})
    assert design.columns == ("tier_x", "n") and design.coefficients == (
        "purchase.tier_x",
        "purchase.n",
        "dropout.n",
    )
    new = frame.assign(tier=["x", "z", "y", "z"])
    with pytest.raises(DataValidationError, match=r"2 of 4 customers have a level not seen.*b"):
        design.encode(new, new["customer_id"])
    with pytest.raises(DataValidationError, match="not numbers"):
        CovariateDesign.learn(frame.dropna(), ["tier"], [])
    with pytest.raises(DataValidationError, match="single value"):
        CovariateDesign.learn(frame.assign(n=1), ["n"], [])
    with pytest.raises(DataValidationError, match=r"\['size'\] are not in the customer list"):
        CovariateDesign.learn(frame, ["size"], [])
    with pytest.raises(DataValidationError, match="Reference level 'q'"):
        CovariateDesign.learn(frame.dropna(), ["tier"], [], ["tier"], {"tier": "q"})


def test_the_scorecard_says_whether_covariates_improved_the_holdout(apparel_dir):
    """On the apparel split of the shared data's README the covariates are significant in the
    calibration likelihood yet do not significantly improve the 52-week holdout: the scorecard
    shows both, keeps the plain models, and the MLflow metric names are valid."""
    import datetime as dt

    from clv.evaluation import evaluate
    from clv.tracking import mlflow_name, scorecard_metrics

    end = pd.Timestamp("2008-12-31")
    config = Config().with_overrides(
        {
            "data.transactions": str(apparel_dir / "transactions.csv"),
            "train.calibration_end": dt.date(2007, 12, 31),
            "train.as_of": end.date(),
            "train.candidates": ["bgnbd", "pareto", "mbgcnbd"],
            "covariates.purchase": ["gender", "channel"],
            "covariates.dropout": ["gender", "channel"],
            "covariates.spend": ["gender", "channel"],
            "covariates.categorical": ["channel"],
        }
    )
    log = load_transactions(config.data.transactions, config.data, as_of=end)
    customers = read_customer_list(apparel_dir / "customers.csv", "customer_id")
    result = evaluate(log, config, customers)
    section = result.scorecard["covariates"]
    assert section["columns"] == ["gender", "channel_1"]
    assert section["reference"] == {"channel": "0"}
    assert set(section["models"]) == {"bgnbd", "pareto"}  # MBG/CNBD-k takes no covariates
    pareto = section["models"]["pareto"]
    assert pareto["lr_df"] == 4 and pareto["lr_statistic"] > 18.47 and pareto["lr_p_value"] < 1e-3
    plain = result.scorecard["purchases"]["pareto"]["poisson_deviance"]
    assert pareto["holdout"]["poisson_deviance"] < plain  # better, but within noise:
    assert 0 < pareto["deviance_gain_z"] < 1.645 and not pareto["improved"]
    effect = pareto["coefficients"]["purchase.channel_1"]
    assert effect["estimate"] > 2 * effect["se"] > 0
    spend = result.scorecard["spend_covariates"]  # attributes do not move spend here
    assert spend["lr_df"] == 2 and spend["lr_p_value"] > 0.05
    assert not spend["improved"] and not spend["used"]
    assert not hasattr(result.spend_model, "coefficients")  # the plain Gamma-Gamma is kept
    assert "pareto_covariates" not in result.purchase_models  # compared, not selectable
    names = scorecard_metrics(result.scorecard, "pareto")
    assert "covariates.pareto.coefficients.purchase.channel_1.estimate" in names
    assert all(name == mlflow_name(name) for name in names)


def test_covariates_need_the_customer_list(sample_log):
    from clv.evaluation import evaluate

    config = Config().with_overrides(
        {"train.candidates": ["bgnbd"], "covariates.purchase": ["channel"]}
    )
    with pytest.raises(DataValidationError, match="--customers"):
        evaluate(sample_log, config)
