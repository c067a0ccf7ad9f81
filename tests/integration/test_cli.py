"""The clv command end to end (real files, real fits) through Typer's CliRunner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from clv.cli import app
from clv.config import Config, load_config
from clv.tables import write_table

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def sample_bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "cdnow-sample"
    result = run(
        "train",
        "-t",
        "cdnow-sample",
        "--calibration-end",
        "1997-09-30",
        "--model-dir",
        str(out),
        "--no-mlflow",
    )
    assert result.exit_code == 0, result.output
    assert f"Model bundle: {out}" in result.output.replace("\n", "")
    return out


def test_train_writes_the_holdout_comparison_into_the_bundle(sample_bundle):
    manifest = json.loads((sample_bundle / "bundle.json").read_text())
    selection = manifest["model_selection"]
    assert selection["calibration_end"] == "1997-09-30"
    assert selection["holdout_length"] == pytest.approx(39.0)
    scores = selection["scores"]
    assert scores["naive"]["actual_total"] == 1882
    # chosen by the proper score (issue 10), not by MAE
    assert selection["criterion"] == "holdout poisson_deviance of purchases"
    chosen = min((k for k in scores if k != "naive"), key=lambda k: scores[k]["poisson_deviance"])
    assert selection["chosen"] == chosen
    assert scores[chosen]["mae"] < scores["naive"]["mae"]  # the BTYD model beats the naive rate
    assert manifest["config"]["data"]["transactions"] == "cdnow-sample"
    assert (sample_bundle / "scorecard.json").is_file()


def test_score_writes_parquet_with_the_documented_columns(sample_bundle, tmp_path):
    out = tmp_path / "scores.parquet"
    result = run(
        "score",
        "-m",
        str(sample_bundle),
        "-t",
        "cdnow-sample",
        "--horizon",
        "26.5",
        "--discount-rate",
        "0.002",
        "--margin",
        "0.3",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert "customers scored" in result.output and "2,357" in result.output
    assert "churn_probability is for the churn model's horizon" in result.output
    scores = pd.read_parquet(out)
    for col in [
        "customer_id",
        "frequency",
        "recency",
        "T",
        "monetary_value",
        "p_alive",
        "expected_purchases",
        "p_no_purchase",
        "expected_avg_value",
        "clv",
        "churn_probability",
        "value_segment",
    ]:
        assert col in scores
    assert len(scores) == 2357
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]  # no temp file left
    # the printed value-segment table: the written scores' figures, highest mean CLV first
    by = scores.groupby("value_segment")
    order = by["clv"].mean().sort_values(ascending=False).index
    rows = [
        [
            name,
            f"{by.size()[name]:,}",
            f"{by.size()[name] / 2357:.1%}",
            f"{by['clv'].sum()[name] / scores['clv'].sum():.1%}",
            f"{by['churn_probability'].mean()[name]:.3f}",
        ]
        for name in order
    ]
    printed = [
        [cell.strip() for cell in line.split("│")]
        for line in result.output.splitlines()
        if line.split("│")[0].strip() in set(order)
    ]
    assert printed == rows


def test_score_a_customer_list_as_of_a_day(sample_bundle, tmp_path):
    ids = tmp_path / "ids.csv"
    pd.DataFrame({"customer_id": ["00004", "99999"]}).to_csv(ids, index=False)
    out = tmp_path / "s.csv"
    result = run(
        "score",
        "-m",
        str(sample_bundle),
        "-t",
        "cdnow-sample",
        "--customers",
        str(ids),
        "--as-of",
        "1997-06-30",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out, dtype={"customer_id": str})
    assert scores["customer_id"].tolist() == ["00004", "99999"]
    assert scores["has_history"].tolist() == [True, False]
    assert "rows after the as-of day" in result.output


def test_bad_input_exits_1_with_the_column_named_and_writes_nothing(sample_bundle, tmp_path):
    log = tmp_path / "log.csv"
    pd.DataFrame({"cust": ["a", "b"], "when": ["2020-01-01", "soon"], "amount": [1, 2]}).to_csv(
        log, index=False
    )
    out = tmp_path / "s.csv"
    result = run(
        "score",
        "-m",
        str(sample_bundle),
        "-t",
        str(log),
        "--customer-col",
        "cust",
        "--date-col",
        "when",
        "--out",
        str(out),
    )
    assert result.exit_code == 1
    assert "'when': 1 row(s) have a date that cannot be parsed" in result.output
    assert not out.exists()


def test_a_log_without_amounts_trains_purchase_models_only(tmp_path, sample_log):
    log = tmp_path / "log.csv"
    sample_log.frame.drop(columns="amount").to_csv(log, index=False)
    result = run(
        "train",
        "-t",
        str(log),
        "--model-dir",
        str(tmp_path / "m"),
        "--holdout",
        "39",
        "--no-mlflow",
    )
    assert result.exit_code == 0, result.output
    assert "no amount column" in result.output
    manifest = json.loads((tmp_path / "m" / "bundle.json").read_text())
    assert manifest["spend_model"] is None
    out = tmp_path / "s.csv"
    result = run("score", "-m", str(tmp_path / "m"), "-t", str(log), "-o", str(out))
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out)
    assert "clv" not in scores and "value_segment" in scores  # segments by expected purchases


def test_config_file_settings_and_command_line_precedence(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "data": {"transactions": "cdnow-sample"},
                "train": {
                    "calibration_end": "1997-09-30",
                    "candidates": ["bgnbd"],
                    "model_dir": str(tmp_path / "from-file"),
                },
                "mlflow": {"enabled": False},
            }
        )
    )
    result = run("train", "--config", str(cfg), "--model-dir", str(tmp_path / "from-cli"))
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "from-cli" / "bundle.json").read_text())
    assert manifest["purchase_model"]["kind"] == "bgnbd"
    assert not (tmp_path / "from-file").exists()


def test_evaluate_writes_the_scorecard(tmp_path):
    out = tmp_path / "card.json"
    result = run(
        "evaluate", "-t", "cdnow-sample", "--calibration-end", "1997-09-30", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    card = json.loads(out.read_text())
    assert set(card["purchases"]) == {
        "bgnbd",
        "ggomnbd",
        "mbgcnbd",
        "ensemble",
        "stacked",
        "naive",
    }
    assert card["same_as"] == {"pareto": "ggomnbd", "mbgnbd": "mbgcnbd"}  # at their limits
    assert {"spearman", "normalized_gini", "top_decile_capture"} <= set(card["value"]["bgnbd"])
    assert {"roc_auc", "pr_auc", "brier", "ece"} <= set(card["churn"]["bgnbd_p_no_purchase"])
    assert (
        "too short for a leak-free churn window" in card["churn_note"]
    )  # 39 weeks before 1997-09-30
    assert "ROC AUC" in result.output
    # FHL 2005 fig. 4: groups 0 … 6, 7+ that add up to the holdout, and the models' totals
    table = card["conditional_expectations"]
    assert [r["frequency"] for r in table] == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert sum(r["customers"] for r in table) == 2357
    assert sum(r["customers"] * r["actual"] for r in table) == pytest.approx(1882)
    for kind in ("bgnbd", "ggomnbd"):
        total = sum(r["customers"] * r[kind] for r in table)
        assert total == pytest.approx(card["purchases"][kind]["predicted_total"])
    assert "by calibration frequency" in result.output
    # MAE's blind spot is shown: the all-zero forecast's MAE beside the models
    assert card["zero_forecast"]["mae"] == pytest.approx(1882 / 2357)  # the mean count
    assert "zero for" in result.output
    assert card["selection_metric"] == "poisson_deviance"


def test_unknown_config_keys_are_errors(tmp_path):
    cfg = tmp_path / "typo.yaml"
    cfg.write_text("train:\n  holdut: 10\n")
    result = run("train", "--config", str(cfg))
    assert result.exit_code == 1 and "train.holdut" in result.output


def test_default_yaml_is_the_built_in_default():
    assert load_config(REPO / "configs" / "default.yaml") == Config()


def test_interrupted_write_leaves_no_file(tmp_path):
    frame = pd.DataFrame({"a": [1, "x"]})  # mixed objects: pyarrow refuses mid-write
    with pytest.raises(Exception):  # noqa: B017 - pyarrow's own error type
        write_table(frame, tmp_path / "out.parquet")
    assert list(tmp_path.iterdir()) == []


def test_help_imports_no_heavy_library():
    code = (
        "import sys, clv.cli; print(sorted(m for m in ('pandas', 'duckdb', 'lifetimes', 'scipy', "
        "'mlflow', 'lightgbm', 'sklearn', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_terminated_run_removes_its_temporary_files(tmp_path):
    """SIGTERM (kill, a CI timeout; also SIGHUP) unwinds like Ctrl-C: no half-written output, no
    temporary files, even when the signal comes twice."""
    import os
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from clv.cli import install_signal_handlers as _main
        from clv.tables import atomic_path, query
        _main()  # what every clv command runs first
        with atomic_path(Path({str(tmp_path)!r}) / "scores.csv") as tmp:
            tmp.write_text("half")
            query("SELECT 1")
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)  # a second one must not cut the clean-up short
            import time; time.sleep(5)
        """
    )
    env = {**os.environ, "CLV_DUCKDB_TEMP_DIRECTORY": str(tmp_path / "spill")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == 143, done.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "spill"]
    assert list((tmp_path / "spill").iterdir()) == []


def test_gamma_gompertz_trains_saves_and_scores(tmp_path):
    """A model beyond lifetimes goes through the same train → JSON bundle → score path."""
    from clv.models.fitted import PurchaseModel

    cfg = tmp_path / "gg.yaml"
    cfg.write_text(
        "train:\n  calibration_end: 1997-09-30\n  candidates: [ggomnbd, bgnbd]\n"
        f"  model_dir: {tmp_path / 'gg'}\nmlflow:\n  enabled: false\n"
    )
    result = run("train", "--config", str(cfg), "-t", "cdnow-sample")
    assert result.exit_code == 0, result.output
    assert "Fitted GG/NBD on the calibration period" in result.output
    manifest = json.loads((tmp_path / "gg" / "bundle.json").read_text())
    saved = manifest["purchase_model"]
    assert saved["kind"] == "ggomnbd"  # Pareto/NBD's fit beats BG/NBD's on this split
    assert set(saved["params"]) == {"r", "alpha", "b", "s", "beta"}
    out = tmp_path / "scores.csv"
    result = run("score", "-m", str(tmp_path / "gg"), "-t", "cdnow-sample", "-o", str(out))
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out)
    model = PurchaseModel.from_dict(saved)
    history = (scores[c].to_numpy() for c in ("frequency", "recency", "T"))
    np.testing.assert_allclose(scores["p_alive"], model.p_alive(*history), rtol=1e-9)
    assert scores["expected_purchases_low"].le(scores["expected_purchases"]).all()


def test_regular_buyers_are_noticed_and_mbg_cnbd_trains_and_scores(tmp_path):
    """BTYDplus' grocery log: the split line says purchases are regular, MBG/CNBD-k gets the
    times between purchases on calibration and on the whole log, and scores like its JSON."""
    from clv.models.fitted import PurchaseModel

    grocery = Path(__file__).parents[1] / "data" / "grocery.csv"
    result = run(
        "train",
        "-t",
        str(grocery),
        "--calibration-end",
        "2006-12-31",
        "--model-dir",
        str(tmp_path / "g"),
        "--no-mlflow",
        "--config",
        str(_write(tmp_path / "c.yaml", "train:\n  candidates: [mbgcnbd]\n")),
    )
    assert result.exit_code == 0, result.output
    assert "customers buy at regular intervals" in result.output
    saved = json.loads((tmp_path / "g" / "bundle.json").read_text())["purchase_model"]
    assert saved["kind"] == "mbgcnbd" and saved["params"]["k"] == 2.0
    out = tmp_path / "s.csv"
    result = run("score", "-m", str(tmp_path / "g"), "-t", str(grocery), "-o", str(out))
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out)
    model = PurchaseModel.from_dict(saved)
    history = [scores[c].to_numpy() for c in ("frequency", "recency", "T")]
    np.testing.assert_allclose(scores["p_alive"], model.p_alive(*history), rtol=1e-9)
    np.testing.assert_allclose(
        scores["p_no_purchase"], model.p_no_purchase(52.0, *history), rtol=1e-9
    )


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
