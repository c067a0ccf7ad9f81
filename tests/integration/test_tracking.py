"""MLflow: runs, child runs, plots, the pyfunc model, the registry and a real tracking server."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from clv.cli import app
from clv.config import DataConfig
from clv.data import load_transactions
from clv.predict import customer_features, load_model

runner = CliRunner()
PLOTS = {
    "calibration_vs_holdout.png",
    "tracking_cumulative.png",
    "frequency_recency_matrix.png",
    "p_alive_matrix.png",
    "value_deciles.png",
    "churn_roc.png",
    "churn_reliability.png",
    "pit_histogram.png",
    "churn_feature_importance.png",
}


def train(uri: str, tmp: Path, *extra: str):
    result = runner.invoke(
        app,
        [
            "train",
            "-t",
            "cdnow-sample",
            "--calibration-end",
            "1997-09-30",
            "--tracking-uri",
            uri,
            "--experiment",
            "tests",
            "--registered-model",
            "clv-test",
            "--model-dir",
            str(tmp / "bundle"),
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    first = train(uri, tmp)
    second = train(uri, tmp, "--model-dir", str(tmp / "worse"))  # same data: not better
    return uri, tmp, first, second


def test_a_run_has_config_fingerprint_scorecard_and_children(store):
    uri, *_ = store
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["tests"], order_by=["start_time ASC"])
    parents = runs[runs["tags.mlflow.parentRunId"].isna()]
    assert len(parents) == 2
    parent = parents.iloc[0]
    assert parent["params.data.transactions"] == "cdnow-sample"
    assert parent["params.train.calibration_end"] == "1997-09-30"
    assert len(parent["tags.data.sha256"]) == 64 and parent["tags.version.lifetimes"]
    assert parent["metrics.purchases.naive.actual_total"] == 1882
    assert parent["metrics.purchases.chosen.mae"] < parent["metrics.purchases.naive.mae"]
    assert 0.5 < parent["metrics.churn.churn_model.roc_auc"] <= 1
    assert 0.8 < parent["metrics.regularity.k"] < 1.3  # CDNOW buys about as randomly as Poisson
    children = runs[runs["tags.mlflow.parentRunId"] == parent["run_id"]]
    assert set(children["tags.mlflow.runName"]) == {  # the nested fits at their limits
        "BG/NBD",  # (Pareto/NBD, MBG/NBD) leave the choice to GG/NBD and MBG/CNBD-k
        "GG/NBD",
        "MBG/CNBD-k",
        "Ensemble (BG/NBD + MBG/NBD + Pareto/NBD)",
        "Stacked (0.52 BG/NBD + 0.48 GG/NBD)",
        "churn classifier",
    }
    assert parent["tags.same_as.pareto"] == "ggomnbd"
    assert parent["tags.same_as.mbgnbd"] == "mbgcnbd"
    # the stacking weights: on the parent as metrics, on the stacked child as parameters
    weights = [parent[f"metrics.stacking.weights.{k}"] for k in ("bgnbd", "mbgcnbd", "ggomnbd")]
    assert sum(weights) == pytest.approx(1.0) and weights[1] == 0.0
    stacked = children[children["tags.mlflow.runName"].str.startswith("Stacked")].iloc[0]
    assert float(stacked["params.param.ggomnbd.weight"]) == pytest.approx(weights[2])


def test_plots_and_scorecard_are_artifacts(store):
    uri, *_ = store
    client = MlflowClient(uri)
    mlflow.set_tracking_uri(uri)  # each test points MLflow at the store itself (conftest resets it)
    run = mlflow.search_runs(
        experiment_names=["tests"], filter_string="tags.chosen_model != ''"
    ).iloc[0]
    names = {Path(a.path).name for a in client.list_artifacts(run["run_id"], "plots")}
    assert names == PLOTS
    local = client.download_artifacts(run["run_id"], "scorecard.json")
    assert json.loads(Path(local).read_text())["purchases"]["naive"]["actual_total"] == 1882


def test_registry_champion_then_challenger(store):
    uri, _, first, second = store
    client = MlflowClient(uri)
    assert int(client.get_model_version_by_alias("clv-test", "champion").version) == 1
    assert int(client.get_model_version_by_alias("clv-test", "challenger").version) == 2
    first_out, second_out = (" ".join(r.output.split()) for r in (first, second))
    assert "as champion" in first_out and "first champion" in first_out
    # the champion (v1) is refitted on the challenger's split and compared by a paired test
    assert "as challenger" in second_out and "refitted" in second_out and "paired z" in second_out


def test_pyfunc_model_scores_a_customer_frame(store):
    uri, *_ = store
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/clv-test@champion")
    bundle = load_model("models:/clv-test@champion", uri)
    frame = customer_features(bundle, load_transactions("cdnow-sample", DataConfig())).head(50)
    out = model.predict(frame.astype({c: "float64" for c in frame.select_dtypes("number").columns}))
    for col in [
        "p_alive",
        "expected_purchases",
        "p_no_purchase",
        "clv",
        "churn_probability",
        "value_segment",
    ]:
        assert col in out
    assert len(out) == 50 and out["churn_probability"].between(0, 1).all()


def test_score_from_the_registry(store, tmp_path):
    uri, *_ = store
    out = tmp_path / "s.csv"
    result = runner.invoke(
        app,
        [
            "score",
            "-m",
            "models:/clv-test@champion",
            "--tracking-uri",
            uri,
            "-t",
            "cdnow-sample",
            "-o",
            str(out),
            "--horizon",
            "39",
        ],
    )
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out)
    assert len(scores) == 2357 and "churn_probability" in scores
    assert "not for --horizon 52" not in result.output  # the churn horizon is the holdout, 39 weeks


def test_against_a_real_tracking_server(tmp_path, ui_smoke):
    ui = ui_smoke
    store = f"sqlite:///{tmp_path / 'server.db'}"
    artifacts = ("--artifacts-destination", str(tmp_path / "artifacts"))
    with ui.mlflow_server(store, tmp_path, *artifacts) as base:
        train(base, tmp_path, "--model-dir", str(tmp_path / "b"))
        experiments = ui.post_json(f"{base}/api/2.0/mlflow/experiments/search", {"max_results": 10})
        exp_id = next(
            e["experiment_id"] for e in experiments["experiments"] if e["name"] == "tests"
        )
        runs = ui.post_json(f"{base}/api/2.0/mlflow/runs/search", {"experiment_ids": [exp_id]})[
            "runs"
        ]
        parent = next(r for r in runs if r["info"]["run_name"].startswith("train"))
        metrics = {m["key"]: m["value"] for m in parent["data"]["metrics"]}
        assert metrics["purchases.naive.actual_total"] == 1882
        assert len(runs) == 7  # parent + 3 purchase models + the two mixtures + churn


def test_the_registry_name_follows_the_data_source():
    from clv.config import Config
    from clv.tracking import registered_model_name

    def name(**mlflow_and_data):
        return registered_model_name(Config().with_overrides(mlflow_and_data))

    assert name() == "clv-cdnow"
    assert name(**{"data.transactions": "cdnow-sample"}) == "clv-cdnow-sample"
    assert name(**{"data.transactions": "exports/Orders 2026.csv.gz"}) == "clv-orders-2026"
    assert name(**{"data.transactions": "lake/orders/", "mlflow.registered_model": "x"}) == "x"


def test_only_a_missing_alias_reads_as_no_champion(tmp_path):
    """A real store's answer for a model without a champion is "no champion"; any other
    registry error (auth, network) must not be."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from clv.tracking import no_such_alias as _no_such_alias

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'r.db'}")
    client.create_registered_model("m")
    for lookup in (
        lambda: client.get_model_version_by_alias("m", "champion"),
        lambda: client.get_model_version_by_alias("absent", "champion"),
    ):
        with pytest.raises(MlflowException) as caught:
            lookup()
        assert _no_such_alias(caught.value)
    denied = MlflowException("permission denied", error_code="PERMISSION_DENIED")
    assert not _no_such_alias(denied)
    assert not _no_such_alias(MlflowException("connection refused", error_code="INTERNAL_ERROR"))
