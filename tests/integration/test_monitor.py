"""`clv monitor`: a model trained to 1997-09-30 on CDNOW, checked against the log to 1998-06-30.

Every realised number is recomputed here from the cleaned log's rows with pandas and
scikit-learn, not through clv's own feature or metric code.
"""

from __future__ import annotations

import html
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score
from typer.testing import CliRunner

from clv.cli import app
from clv.config import DataConfig
from clv.data import load_transactions
from clv.monitor import population_stability

runner = CliRunner()
T0, END = pd.Timestamp("1997-09-30"), pd.Timestamp("1998-06-30")


@pytest.fixture(scope="module")
def monitored(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("monitor")
    model = str(tmp / "model")
    args = [
        "train",
        "--as-of",
        "1997-09-30",
        "--holdout",
        "13",
        "--no-mlflow",
        "--model-dir",
        model,
    ]
    trained = runner.invoke(app, args)
    assert trained.exit_code == 0, trained.output
    done = runner.invoke(app, ["monitor", "-m", str(tmp / "model"), "-o", str(tmp / "out")])
    assert done.exit_code == 0, done.output
    return tmp, done


def test_realised_metrics_equal_an_independent_computation(monitored):
    tmp, _ = monitored
    summary = json.loads((tmp / "out/monitor.json").read_text())
    assert summary["window"] == {"from": "1997-09-30", "to": "1998-06-30", "length": 39.0}
    frame = load_transactions("cdnow", DataConfig()).frame  # one row per customer-day
    first = frame.groupby("customer_id")["date"].min()
    known = first[first <= T0].index
    later = frame[(frame["date"] > T0) & (frame["date"] <= END)]
    actual = later.groupby("customer_id").size().reindex(known, fill_value=0)
    assert summary["customers_forecast"] == len(known) == 23570
    assert summary["purchases"]["actual_total"] == actual.sum() == 19684
    customers = pd.read_csv(tmp / "out/customers.csv", dtype={"customer_id": str})
    customers = customers.set_index("customer_id").loc[known]
    np.testing.assert_array_equal(customers["actual_purchases"], actual.to_numpy())
    mu, y = customers["expected_purchases"].to_numpy(), actual.to_numpy(dtype=float)
    assert summary["purchases"]["mae"] == pytest.approx(np.abs(mu - y).mean(), rel=1e-12)
    assert summary["purchases"]["rmse"] == pytest.approx(np.sqrt(((mu - y) ** 2).mean()), rel=1e-12)
    deviance = 2 * np.mean(np.where(y > 0, y * np.log(np.maximum(y, 1) / mu), 0) - (y - mu))
    assert summary["purchases"]["poisson_deviance"] == pytest.approx(deviance, rel=1e-12)
    # churn: no purchase in the churn horizon after T0 (13 weeks here)
    horizon_end = T0 + pd.Timedelta(days=round(summary["churn"]["horizon"] * 7))
    buyers = set(later.loc[later["date"] <= horizon_end, "customer_id"])
    churned = np.array([c not in buyers for c in known], dtype=int)
    np.testing.assert_array_equal(customers["churned"], churned)
    p = customers["churn_probability"].to_numpy()
    assert summary["churn"]["roc_auc"] == pytest.approx(roc_auc_score(churned, p), rel=1e-12)
    assert summary["churn"]["brier"] == pytest.approx(brier_score_loss(churned, p), rel=1e-12)
    # revenue in the window
    revenue = later.groupby("customer_id")["amount"].sum().reindex(known, fill_value=0.0)
    assert summary["value"]["actual_revenue"] == pytest.approx(revenue.sum(), rel=1e-12)
    # by calendar month: the actual counts, and predictions that add up to the total
    monthly = pd.read_csv(tmp / "out/monthly.csv")
    by_month = later.groupby(later["date"].dt.strftime("%Y-%m")).size()
    assert monthly["month"].tolist() == by_month.index.tolist()
    np.testing.assert_array_equal(monthly["actual"], by_month.to_numpy())
    assert monthly["predicted"].sum() == pytest.approx(summary["purchases"]["predicted_total"])
    # by value segment: the groups partition the customers
    segments = summary["purchases_by_segment"]
    assert sum(s["customers"] for s in segments.values()) == 23570
    assert sum(s["actual_total"] for s in segments.values()) == 19684


def test_the_page_the_decision_and_the_run(monitored, tmp_path):
    tmp, done = monitored
    summary = json.loads((tmp / "out/monitor.json").read_text())
    page = (tmp / "out/monitor.html").read_text()
    assert page.count("<img") == 3 and "data:image/png;base64," in page
    assert "Rule:" in page and html.escape(summary["rule"]) in page
    # a single 1997 cohort ages by 39 weeks: T drifts far beyond 0.25, so retraining is advised
    assert summary["drift"]["T"] > 0.25 and summary["retrain"]
    assert "Logged to MLflow run" in done.output
    gated = runner.invoke(
        app,
        [
            "monitor",
            "-m",
            str(tmp / "model"),
            "-o",
            str(tmp_path),
            "--no-mlflow",
            "--fail-on-retrain",
        ],
    )
    assert gated.exit_code == 3
    import mlflow

    run_id = done.output.split("Logged to MLflow run ")[1].split()[0]
    run = mlflow.get_run(run_id)
    assert run.data.tags["clv.kind"] == "monitor" and run.data.tags["retrain"] == "true"
    assert run.data.metrics["purchases.actual_total"] == 19684


def test_population_stability_index():
    rng = np.random.default_rng(0)
    same = population_stability(rng.normal(size=20_000), rng.normal(size=20_000))
    shifted = population_stability(rng.normal(size=20_000), rng.normal(0.5, 1, size=20_000))
    assert same < 0.01 and 0.15 < shifted < 0.4  # ≈ 0.25 for a half-SD shift
