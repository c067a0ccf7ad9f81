"""`dvc repro` rebuilds the pipeline in a fresh copy of the repository, and only what changed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    if shutil.which("dvc") is None or shutil.which("clv") is None:
        pytest.skip("dvc or clv is not on PATH: install the project with its dev extra")
    root = tmp_path_factory.mktemp("repo")
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    config = yaml.safe_load((root / "configs/default.yaml").read_text())
    config["data"]["transactions"] = "cdnow-sample"  # the small slice keeps the test quick
    config["train"]["calibration_end"] = "1997-09-30"
    (root / "configs/default.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
    }
    run(["git", "init", "-q"], root, env)
    run(["git", "add", "-A"], root, env)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"], root, env)
    first = run(["dvc", "repro"], root, env)
    return root, env, first


def test_repro_runs_every_stage_through_the_cli(workspace):
    root, _, first = workspace
    for stage in ("prepare", "train", "evaluate", "score"):
        assert f"Running stage '{stage}'" in first
    assert (root / "data/prepared/transactions.parquet").is_file()
    assert (root / "models/cdnow/bundle.json").is_file()
    assert (root / "scores/cdnow.parquet").is_file()
    assert (
        sorted(p.name for p in (root / "metrics/plots").iterdir())[0]
        == "calibration_vs_holdout.png"
    )
    assert "analytics = false" in (root / ".dvc/config").read_text()


def test_metrics_show_prints_the_scorecard(workspace):
    root, env, _ = workspace
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], root, env))
    metrics = next(iter(shown.values()))["data"]["metrics/scorecard.json"]["data"]
    assert metrics["purchases"]["naive"]["actual_total"] == 1882


def test_a_model_parameter_reruns_train_and_what_follows_only(workspace):
    root, env, _ = workspace
    path = root / "configs/default.yaml"
    config = yaml.safe_load(path.read_text())
    config["train"]["penalizer"] = 0.0001
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    second = run(["dvc", "repro"], root, env)
    assert "Stage 'prepare' didn't change, skipping" in second
    for stage in ("train", "evaluate", "score"):
        assert f"Running stage '{stage}'" in second
    assert (
        json.loads((root / "models/cdnow/bundle.json").read_text())["config"]["train"]["penalizer"]
        == 0.0001
    )
