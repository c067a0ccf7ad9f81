"""The registered model as users meet it: predict on features, an RFM table or raw transactions,
serve it over HTTP, and find the training data as the run's dataset inputs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import warnings

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from clv.cli import app
from clv.config import DataConfig
from clv.data import load_transactions
from clv.predict import customer_features, load_model, score_rfm

runner = CliRunner()
NAME = "clv-pyfunc-test"
MODEL = f"models:/{NAME}@champion"
SERVE = [sys.executable, "-m", "mlflow", "models", "serve"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One training run on the CDNOW sample in its own store, and `clv score` of the champion."""
    tmp = tmp_path_factory.mktemp("pyfunc")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    common = ["-t", "cdnow-sample", "--tracking-uri", uri]
    trained = runner.invoke(
        app,
        [
            "train",
            *common,
            "--registered-model",
            NAME,
            "--experiment",
            "pyfunc",
            "--model-dir",
            str(tmp / "m"),
        ],
    )
    assert trained.exit_code == 0, trained.output
    out = tmp / "scores.csv"
    scored = runner.invoke(app, ["score", *common, "-m", MODEL, "-o", str(out)])
    assert scored.exit_code == 0, scored.output
    return uri, pd.read_csv(out, dtype={"customer_id": str})


def _same_scores(ours: pd.DataFrame, reference: pd.DataFrame) -> None:
    ours = ours.reset_index(drop=True)
    assert ours["customer_id"].tolist() == reference["customer_id"].tolist()
    numeric = [c for c in reference.select_dtypes("number").columns if c in ours]
    assert {"p_alive", "expected_purchases", "clv"} <= set(numeric)
    np.testing.assert_allclose(
        ours[numeric].to_numpy(float), reference[numeric].to_numpy(float), rtol=1e-12, atol=0
    )
    assert ours["value_segment"].tolist() == reference["value_segment"].tolist()


def test_predict_on_features_an_rfm_table_and_raw_transactions(store):
    uri, reference = store
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(MODEL)
    log = load_transactions("cdnow-sample", DataConfig())
    features = customer_features(load_model(MODEL, uri), log)
    assert (features.dtypes == "int64").any()  # as the function returns it, integers included
    from_features = model.predict(features)
    _same_scores(from_features, reference)
    assert "churn_probability" in from_features
    assert set(reference["churn_source"]) == {"churn_model"}

    rfm = features[["customer_id", "frequency", "recency", "T", "monetary_value"]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from_rfm = model.predict(rfm)
    assert set(from_rfm["churn_source"]) == {"btyd_p_no_purchase"}
    assert any("BTYD P(no purchase)" in str(w.message) for w in caught)
    churn_free = reference.drop(columns=["churn_probability", "churn_source"])
    _same_scores(from_rfm.drop(columns=["churn_probability"]), churn_free)
    assert from_rfm["churn_probability"].between(0, 1).all()
    # the stand-in still ranks churners like the classifier does, roughly
    rho = from_rfm["churn_probability"].corr(reference["churn_probability"], method="spearman")
    assert rho > 0.8

    raw = log.frame  # customer_id, date, amount: one row per purchase day
    _same_scores(model.predict(raw), reference)
    early = model.predict(raw, params={"as_of": "1997-12-31", "horizon": 26.0})
    assert early["T"].max() < reference["T"].max()
    assert early["expected_purchases"].sum() < reference["expected_purchases"].sum()


def test_a_frame_that_is_neither_says_what_it_accepts(store):
    uri, _ = store
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(MODEL)
    with pytest.raises(Exception, match="give customer features") as error:
        model.predict(pd.DataFrame({"customer_id": ["a"], "spend": [3.0]}))
    assert "transactions" in str(error.value)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_mlflow_serves_the_champion_on_localhost(store, tmp_path):
    uri, reference = store
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    server = subprocess.Popen(
        [*SERVE, "-m", MODEL, "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "serve.log", "w"),  # noqa: SIM115 - closed with the process
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "the server did not answer /ping"
                time.sleep(1)
        batch = reference[["customer_id", "frequency", "recency", "T", "monetary_value"]].head(50)
        body = {"dataframe_split": batch.to_dict(orient="split"), "params": {"horizon": 52.0}}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            predictions = pd.DataFrame(json.loads(answer.read())["predictions"])
    finally:
        server.terminate()
        server.wait(timeout=30)
    expected = reference.head(50).drop(columns=["churn_probability", "churn_source"])
    _same_scores(predictions.drop(columns=["churn_probability", "churn_source"]), expected)


def test_the_run_logs_its_data_and_the_experiment_is_for_model_training(store):
    uri, _ = store
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("pyfunc")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert "purchases.chosen.poisson_deviance" in experiment.tags["mlflow.note.content"]
    run = client.search_runs([experiment.experiment_id], "tags.chosen_model != ''")[0]
    inputs = {
        next(t.value for t in d.tags if t.key == "mlflow.data.context"): d.dataset
        for d in run.inputs.dataset_inputs
    }
    assert set(inputs) == {"training", "calibration"}
    full, calibration = inputs["training"], inputs["calibration"]
    assert full.digest == run.data.tags["data.sha256"][:32]
    assert json.loads(full.source)["uri"] == "cdnow-sample"
    profile = json.loads(full.profile)
    assert profile["customers"] == 2357 and profile["transactions"] == int(
        run.data.tags["data.transactions"]
    )
    early = json.loads(calibration.profile)
    assert early["transactions"] < profile["transactions"]
    assert early["last_date"] < profile["last_date"] and calibration.digest != full.digest
    columns = [c["name"] for c in json.loads(full.schema)["mlflow_colspec"]]
    assert columns == ["customer_id", "date", "amount"]


def test_a_model_beyond_lifetimes_is_served_the_same_way(tmp_path):
    """MBG/CNBD-k (an integer k among its parameters) on BTYDplus' grocery log: the registered
    pyfunc model scores an RFM table as `clv score` does."""
    from pathlib import Path

    grocery = str(Path(__file__).parents[1] / "data" / "grocery.csv")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  candidates: [mbgcnbd]\n  calibration_end: 2006-12-31\n")
    common = ["-t", grocery, "--tracking-uri", uri]
    trained = runner.invoke(
        app,
        [
            "train",
            *common,
            "--config",
            str(config),
            "--registered-model",
            "clv-grocery",
            "--model-dir",
            str(tmp_path / "m"),
        ],
    )
    assert trained.exit_code == 0, trained.output
    out = tmp_path / "scores.csv"
    scored = runner.invoke(
        app, ["score", *common, "-m", "models:/clv-grocery@champion", "-o", str(out)]
    )
    assert scored.exit_code == 0, scored.output
    reference = pd.read_csv(out, dtype={"customer_id": str})
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/clv-grocery@champion")
    rfm = reference[["customer_id", "frequency", "recency", "T"]]  # the log has no amounts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        served = model.predict(rfm)
    np.testing.assert_allclose(served["p_alive"], reference["p_alive"], rtol=1e-12)
    np.testing.assert_allclose(
        served["expected_purchases"], reference["expected_purchases"], rtol=1e-12
    )


@pytest.fixture(scope="module")
def covariate_run(tmp_path_factory, apparel_dir):
    """Pareto/NBD and Gamma-Gamma with the apparel attributes, trained and shipped
    (``require_gain: false``), then scored by `clv score`, which reads the attributes from the
    training's customer list."""
    tmp = tmp_path_factory.mktemp("covariates")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    config = tmp / "c.yaml"
    config.write_text(
        "train:\n  candidates: [pareto]\n  holdout: 52\n"
        f"  customers: {apparel_dir / 'customers.csv'}\n"
        "covariates:\n  purchase: [gender, channel]\n  dropout: [gender, channel]\n"
        "  spend: [gender, channel]\n  categorical: [channel]\n  require_gain: false\n"
    )
    common = ["-t", str(apparel_dir / "transactions.csv"), "--tracking-uri", uri]
    trained = runner.invoke(
        app,
        [
            "train",
            *common,
            "--config",
            str(config),
            "--registered-model",
            "clv-cov",
            "--model-dir",
            str(tmp / "m"),
        ],
    )
    assert trained.exit_code == 0, trained.output
    assert "Chosen: Pareto/NBD + covariates" in trained.output
    score = ["score", *common, "--config", str(config), "-m", str(tmp / "m")]
    scored = runner.invoke(app, [*score, "-o", str(tmp / "scores.csv")])
    assert scored.exit_code == 0, scored.output
    return tmp, uri, score, scored.output


def test_a_model_with_covariates_scores_each_customer_at_her_parameters(covariate_run, apparel_dir):
    """Each customer is scored at her own parameters (α·e^(−γᵀz), β·e^(−γᵀz), v·e^(δᵀz),
    computed here by hand), and the registered pyfunc model gives the same scores from customer features with
    the attribute columns (and names what it lacks without them)."""
    from clv.models.fitted import PurchaseModel
    from clv.models.gamma_gamma import SpendModel

    tmp, uri, _, _ = covariate_run
    scores = pd.read_csv(tmp / "scores.csv", dtype={"customer_id": str})
    bundle = load_model(tmp / "m")
    model = bundle.purchase
    assert set(bundle.spend.coefficients) == {"spend.gender", "spend.channel_1"}
    assert model.kind == "pareto_covariates" and set(model.coefficients) == {
        "purchase.gender",
        "purchase.channel_1",
        "dropout.gender",
        "dropout.channel_1",
    }
    attributes = pd.read_csv(apparel_dir / "customers.csv", dtype={"customer_id": str})
    frame = scores.merge(attributes, on="customer_id")
    g = model.coefficients
    for gender, channel in [(0, 0), (1, 0), (0, 1), (1, 1)]:
        rows = frame[(frame["gender"] == gender) & (frame["channel"] == channel)]
        params = dict(model.params)
        params["alpha"] *= np.exp(
            -(g["purchase.gender"] * gender + g["purchase.channel_1"] * channel)
        )
        params["beta"] *= np.exp(-(g["dropout.gender"] * gender + g["dropout.channel_1"] * channel))
        plain = PurchaseModel("pareto", params, "week")
        history = [rows[c].to_numpy(float) for c in ("frequency", "recency", "T")]
        np.testing.assert_allclose(
            rows["expected_purchases"], plain.expected_purchases(52.0, *history), rtol=1e-10
        )
        np.testing.assert_allclose(rows["p_alive"], plain.p_alive(*history), rtol=1e-10)
        spend = bundle.spend
        d = spend.coefficients
        scale = np.exp(d["spend.gender"] * gender + d["spend.channel_1"] * channel)
        own = SpendModel({**spend.params, "v": spend.params["v"] * scale}, 1, 0.0)
        value = own.expected_average_value(rows["frequency"], rows["monetary_value"])
        np.testing.assert_allclose(rows["expected_avg_value"], value, rtol=1e-10)
    # the registered model: customer features with the attributes, as a user has them
    mlflow.set_tracking_uri(uri)
    served = mlflow.pyfunc.load_model("models:/clv-cov@champion")
    log = load_transactions(str(apparel_dir / "transactions.csv"), DataConfig())
    features = customer_features(bundle, log).merge(attributes, on="customer_id")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predicted = served.predict(features)
    _same_scores(predicted, scores)
    empty = score_rfm(bundle, features.iloc[:0], 52.0)  # no customers: no rows, same columns
    assert len(empty) == 0 and list(empty.columns) == list(predicted.columns)
    # without the attributes the model says what it needs
    with pytest.raises(Exception, match="gender"):
        served.predict(customer_features(bundle, log))


def test_spark_scores_a_model_with_covariates_as_the_local_engine(covariate_run, monkeypatch):
    import shutil

    if shutil.which("java") is None:
        pytest.skip("Spark needs Java, which is not installed")
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    tmp, _, score, local_output = covariate_run
    out = tmp / "spark.parquet"
    done = runner.invoke(app, [*score, "-o", str(out), "--engine", "spark"])
    assert done.exit_code == 0, done.output
    ranges = [[x for x in o.splitlines() if "% range" in x] for o in (local_output, done.output)]
    assert len(ranges[0]) == 2 and ranges[1] == ranges[0], ranges
    local = pd.read_csv(tmp / "scores.csv", dtype={"customer_id": str})
    spark = pd.read_parquet(out).sort_values("customer_id", ignore_index=True)
    local = local.sort_values("customer_id", ignore_index=True)
    _same_scores(spark, local)


def test_no_customers_score_to_no_rows_with_every_column(store):
    """An empty list is scored to an empty table (the totals 0 with a 0 range), not an error."""
    uri, reference = store
    bundle = load_model(MODEL, uri)
    features = customer_features(bundle, load_transactions("cdnow-sample", DataConfig()))
    empty = score_rfm(bundle, features.iloc[:0], 52.0)
    assert len(empty) == 0 and list(empty.columns) == list(reference.columns)
    assert empty.attrs["ranges"]["purchases"]["high"] == 0.0
