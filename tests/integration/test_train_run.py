"""What a user sees of `clv train` while it runs, and where its bundle lands (real processes,
a real MLflow store)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from clv.cli import app

runner = CliRunner()


def test_training_reports_each_stage_as_it_happens(tmp_path):
    """Lines reach a pipe while the run works, not all at once when it ends."""
    command = [sys.executable, "-c", "from clv.cli import app; app()", "train"]
    command += ["-t", "cdnow-sample", "--no-mlflow", "--model-dir", str(tmp_path / "m")]
    env = {**os.environ, "COLUMNS": "120"}
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    arrivals = [(time.perf_counter() - started, line) for line in proc.stdout]
    ended = time.perf_counter() - started
    assert proc.wait() == 0
    stages = [(t, line) for t, line in arrivals if line.startswith("[")]
    texts = [line.split("] ", 1)[1] for _, line in stages]
    expected = ["Read and cleaned", "Split at", "Fitted BG/NBD", "Fitted MBG/NBD"]
    expected += ["Fitted Pareto/NBD", "Fitted Gamma-Gamma", "Trained and scored the churn"]
    expected += ["Refitted", "Retrained the churn", "Wrote the bundle"]
    assert [next(t for t in texts if t.startswith(e)) for e in expected]  # every stage …
    positions = [next(i for i, t in enumerate(texts) if t.startswith(e)) for e in expected]
    assert positions == sorted(positions)  # … in order
    cleaning = next(t for t, line in arrivals if line.startswith("Cleaning report"))
    first = stages[0][0]
    # the first stage and the cleaning report arrive long before the run ends
    assert ended - first > 1.0 and ended - cleaning > 1.0
    seconds = [float(line[1:].split(" s]")[0]) for _, line in stages]
    assert seconds == sorted(seconds) and seconds[-1] > seconds[0]


def test_a_challenger_never_replaces_the_served_model(tmp_path, monkeypatch):
    """The default model folder holds the champion: a run that is only challenger gets its own
    folder and says so; `clv score` without --model uses the champion and names it."""
    monkeypatch.chdir(tmp_path)
    common = ["train", "-t", "cdnow-sample", "--registered-model", "clv-served-test"]
    first = runner.invoke(app, common)
    assert first.exit_code == 0, first.output
    manifest = json.loads(Path("models/cdnow/bundle.json").read_text())
    assert manifest["registry"]["alias"] == "champion"
    champion_version = manifest["registry"]["version"]
    # same data, same settings: the challenger is not better, so it must not be served
    second = runner.invoke(app, common)
    assert second.exit_code == 0, second.output
    own = Path(f"models/cdnow-v{champion_version + 1}")
    assert "challenger" in second.output and str(own) in second.output
    assert json.loads((own / "bundle.json").read_text())["registry"]["alias"] == "challenger"
    served = json.loads(Path("models/cdnow/bundle.json").read_text())
    assert served["registry"]["version"] == champion_version
    assert served["created"] == manifest["created"]
    assert not [p for p in Path("models").iterdir() if p.name.startswith(".")]  # no staging left
    scored = runner.invoke(app, ["score", "-t", "cdnow-sample", "-o", "s.csv"])
    assert scored.exit_code == 0, scored.output
    assert f"clv-served-test v{champion_version} (champion" in " ".join(scored.output.split())
    # the run's stage log is an artifact of the run
    import mlflow

    run_id = manifest["registry"]["run_id"]
    text = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/train.log")).read_text()
    assert "Fitted BG/NBD on the calibration period" in text and "Registered" in text
