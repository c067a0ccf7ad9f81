"""Ordinary logs that no fixture was written for train and score end to end.

- 150 loyal customers over 500 days with nobody leaving: every model with dropout runs to its
  no-dropout edge; before the limit was an answer the run ended with "No candidate purchase
  model converged". Now it ships the NBD limit, says so, and scores P(alive) = 1 with finite
  values everywhere.
- CDNOW's first year with a 26-week churn horizon (the churn window has almost no history):
  the run trains and its churn probabilities are finite.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from clv.cli import app
from clv.data import read_embedded

runner = CliRunner()


def loyal_log(customers: int = 150, days: int = 500, seed: int = 2) -> pd.DataFrame:
    """Customers acquired over 60 days who buy at Gamma(2, 40-day) rates and never leave."""
    rng = np.random.default_rng(seed)
    rate, first = rng.gamma(2.0, 1 / 40, customers), rng.uniform(0, 60, customers)
    rows = []
    for c in range(customers):
        t = first[c]
        while t < days:
            rows.append((f"c{c}", int(t), round(float(rng.gamma(3.0, 20.0)), 2)))
            t += rng.exponential(1 / rate[c])
    frame = pd.DataFrame(rows, columns=["customer_id", "day", "amount"])
    frame["date"] = pd.Timestamp("2023-01-01") + pd.to_timedelta(frame.pop("day"), unit="D")
    return frame


def _train_and_score(tmp_path, log: str, *options: str) -> tuple[pd.DataFrame, str]:
    args = ["train", "--transactions", log, "--no-mlflow", "--model-dir", str(tmp_path / "m")]
    trained = runner.invoke(app, [*args, *options])
    assert trained.exit_code == 0, trained.output
    out = tmp_path / "scores.csv"
    score = ["score", "--model", str(tmp_path / "m"), "--transactions", log, "--out", str(out)]
    scored = runner.invoke(app, score)
    assert scored.exit_code == 0, scored.output
    scores = pd.read_csv(out)
    numbers = scores.select_dtypes("number")
    assert np.isfinite(numbers.to_numpy()).all()
    return scores, trained.output


def test_loyal_customers_train_at_the_no_dropout_limit(tmp_path):
    loyal_log().to_csv(tmp_path / "loyal.csv", index=False)
    scores, output = _train_and_score(tmp_path, str(tmp_path / "loyal.csv"))
    text = " ".join(output.split())
    assert "at its no-dropout limit (NBD) on the calibration period" in text
    assert "this log shows no customer leaving" in text
    assert (scores["p_alive"] == 1.0).all() and len(scores) == 150
    manifest = json.loads((tmp_path / "m" / "bundle.json").read_text())
    assert manifest["purchase_model"]["kind"] == "nbd"
    assert manifest["purchase_model"]["limit_of"] in ("bgnbd", "mbgnbd", "pareto", "ggomnbd")
    assert any("no-dropout limit" in n for n in manifest["notices"])


@pytest.mark.parametrize("horizon", ["13", "26"])
def test_a_young_cohort_trains_with_a_long_churn_horizon(tmp_path, horizon):
    raw = read_embedded("cdnow")
    first_year = raw[raw["date"] <= "19971231"].rename(
        columns={"customer_id": "user", "date": "day", "amount": "total"}
    )
    first_year.to_csv(tmp_path / "year.csv", index=False)
    columns = ["--customer-col", "user", "--date-col", "day", "--amount-col", "total"]
    options = [*columns, "--date-format", "%Y%m%d", "--churn-horizon", horizon]
    args = ["train", "--transactions", str(tmp_path / "year.csv"), "--no-mlflow"]
    trained = runner.invoke(app, [*args, "--model-dir", str(tmp_path / "m"), *options])
    assert trained.exit_code == 0, trained.output
    manifest = json.loads((tmp_path / "m" / "bundle.json").read_text())
    assert manifest["churn_model"]["horizon"] == float(horizon)


def test_a_log_too_young_for_its_churn_horizon_ships_the_purchase_models_churn(
    tmp_path, monkeypatch
):
    """CDNOW's first five months, a 39-week churn horizon: no leak-free window exists at the
    calibration cutoff nor at the log's end. Both churn stages are skipped with the log's age
    and the horizon that fits; the run is logged with the skipped stages as tags, and the
    bundle's churn probability is the shipped model's P(no purchase) within 39 weeks."""
    import mlflow

    monkeypatch.chdir(tmp_path)
    raw = read_embedded("cdnow")
    raw[raw["date"] <= "19970531"].to_csv(tmp_path / "young.csv", index=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log = ["--transactions", str(tmp_path / "young.csv"), "--date-format", "%Y%m%d"]
    options = ["--holdout", "8", "--churn-horizon", "39", "--tracking-uri", uri]
    trained = runner.invoke(app, ["train", *log, *options, "--model-dir", str(tmp_path / "m")])
    assert trained.exit_code == 0, trained.output
    text = " ".join(trained.output.split())
    assert (
        "Skipped the churn classifier on the calibration window: the log is 13.4 weeks old" in text
    )
    assert "Skipped the shipped churn classifier: the log is 21.4 weeks old at 1997-05-31" in text
    assert "a leak-free 39-week churn window needs 58.5 weeks" in text
    manifest = json.loads((tmp_path / "m" / "bundle.json").read_text())
    assert set(manifest["scorecard"]["skipped"]) == {"churn_evaluation", "churn_classifier"}
    assert "churn" not in manifest["scorecard"]  # no comparison without a classifier
    assert manifest["churn_model"]["choice"] == "purchase_model"
    assert manifest["churn_model"]["horizon"] == 39.0
    assert any(n.startswith("Skipped the shipped churn classifier") for n in manifest["notices"])
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["clv"])
    run = runs[runs["tags.mlflow.runName"].str.startswith("train ")].iloc[0]
    assert run["tags.skipped"] == "churn_evaluation, churn_classifier"
    assert "the log is 21.4 weeks old" in run["tags.skipped.churn_classifier"]
    out = tmp_path / "scores.csv"
    scored = runner.invoke(
        app, ["score", "--model", str(tmp_path / "m"), *log, "--horizon", "39", "--out", str(out)]
    )
    assert scored.exit_code == 0, scored.output
    scores = pd.read_csv(out)
    assert (scores["churn_source"] == "purchase_model_p_no_purchase").all()
    # the churn horizon is the scoring horizon here: the two columns are one number
    np.testing.assert_allclose(scores["churn_probability"], scores["p_no_purchase"], rtol=1e-12)
