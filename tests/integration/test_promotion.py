"""Champion vs challenger on the same ground, and the registry from the shell (real MLflow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from clv.bundle import load_bundle
from clv.cli import app
from clv.config import Config, DataConfig
from clv.data import load_transactions
from clv.evaluation import evaluate
from clv.promotion import comparable, compare_on_same_split

runner = CliRunner()


def _train(*args: str):
    result = runner.invoke(app, ["train", "-t", "cdnow-sample", *args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """Two configurations on the same log: BG/NBD alone, then Pareto/NBD alone."""
    import os

    folder = tmp_path_factory.mktemp("promotion")
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        name = ["--registered-model", "clv-promotion-test"]
        first = _train("--config", _config(folder, "bgnbd"), *name)
        second = _train("--config", _config(folder, "pareto"), *name)
    finally:
        os.chdir(cwd)
    return folder, first, second


def _config(folder: Path, candidate: str) -> str:
    path = folder / f"{candidate}.yaml"
    path.write_text(f"train:\n  candidates: [{candidate}]\n  calibration_end: 1997-09-30\n")
    return str(path)


def test_the_champion_is_refitted_on_the_challengers_split_and_tested(registry):
    folder, first, second = registry
    assert "first champion" in " ".join(first.output.split())
    served = json.loads((folder / "models/cdnow/bundle.json").read_text())
    assert served["registry"]["version"] == 1
    text = " ".join(second.output.split())
    assert "champion's bgnbd refitted" in text and "paired z =" in text
    # recompute the test independently from the raw numbers of the challenger's split
    log = load_transactions("cdnow-sample", DataConfig())
    config = Config().with_overrides(
        {"train.candidates": ["pareto"], "train.calibration_end": pd.Timestamp("1997-09-30").date()}
    )
    ev = evaluate(log, config)
    champion = load_bundle(folder / "models/cdnow")
    test = compare_on_same_split(ev, "pareto", champion, "purchases.chosen.poisson_deviance")
    cal = ev.calibration
    y = cal["frequency_holdout"].to_numpy(dtype=float)
    x, t_x, T = (cal[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    from clv.models.fitting import fit_purchase_model

    mu_champion = fit_purchase_model("bgnbd", cal, "week").expected_purchases(39.0, x, t_x, T)
    mu_challenger = ev.predictions["pareto"]

    def unit_deviance(mu):
        return 2 * (np.where(y > 0, y * np.log(np.maximum(y, 1) / mu), 0) - (y - mu))

    d = unit_deviance(mu_champion) - unit_deviance(mu_challenger)
    z = d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))
    assert test["z"] == pytest.approx(z, rel=1e-9)
    assert test["champion_value"] == pytest.approx(unit_deviance(mu_champion).mean(), rel=1e-9)
    alias = "champion" if z > 1.645 else "challenger"
    assert f"as {alias}" in text
    version_dir = folder / ("models/cdnow" if alias == "champion" else "models/cdnow-v2")
    manifest = json.loads((version_dir / "bundle.json").read_text())
    assert manifest["registry"] == {**manifest["registry"], "version": 2, "alias": alias}


def test_clv_models_lists_and_clv_promote_serves_a_version(registry, monkeypatch):
    folder, _, _ = registry
    monkeypatch.chdir(folder)
    listed = runner.invoke(app, ["models", "--name", "clv-promotion-test"])
    assert listed.exit_code == 0, listed.output
    flat = " ".join(listed.output.split())
    assert "v2" in flat and "v1" in flat and "paired z" in flat and "1997-01-01" in flat
    promoted = runner.invoke(app, ["promote", "--name", "clv-promotion-test", "--version", "2"])
    assert promoted.exit_code == 0, promoted.output
    served = json.loads(Path("models/cdnow/bundle.json").read_text())
    assert served["registry"]["version"] == 2 and served["registry"]["alias"] == "champion"
    assert served["config"]["train"]["candidates"] == ["pareto"]
    assert not [p for p in Path("models").iterdir() if p.name.startswith(".")]
    missing = runner.invoke(app, ["promote", "--name", "clv-promotion-test", "--version", "9"])
    assert missing.exit_code == 1 and "has no version 9" in missing.output


def test_an_unrelated_log_is_never_compared():
    config = Config().to_dict()
    window = {"first_date": "1997-01-01", "last_date": "1998-06-30"}
    later = {"first_date": "2020-01-01", "last_date": "2021-06-30"}
    same = {"config": config, "fingerprint": window}
    assert comparable(same, same) is None
    assert "does not overlap" in comparable({"config": config, "fingerprint": later}, same)
    other = json.loads(json.dumps(config))
    other["data"]["customer_col"] = "user_id"
    assert "other columns" in comparable({"config": other, "fingerprint": window}, same)


def test_a_churn_champion_metric_is_decided_by_delong_on_the_same_window(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "churn.yaml"
    config.write_text(
        "train:\n  calibration_end: 1997-09-30\n  candidates: [bgnbd]\n"
        "mlflow:\n  champion_metric: churn.churn_model.roc_auc\n"
        "  registered_model: clv-churn-promotion-test\n"
    )
    first = _train("--config", str(config))
    assert "first champion" in " ".join(first.output.split())
    # the same configuration again: retraining the champion's churn configuration on this
    # window reproduces its score exactly, so the AUCs are equal and nothing is promoted
    second = " ".join(_train("--config", str(config)).output.split())
    assert "as challenger" in second and "DeLong z = 0.00" in second
    manifest = json.loads(Path("models/cdnow-v2/bundle.json").read_text())
    assert manifest["registry"]["alias"] == "challenger"
    # another churn horizon: the labels differ, so the scores are not compared
    third = " ".join(_train("--config", str(config), "--churn-horizon", "20").output.split())
    assert "not compared: the champion's churn horizon" in third
