"""No ``nan`` reaches a person or a JSON file: every command on a log that leaves each optional
metric empty.

The log is made so that what can be empty is: no customer seen leaving (the models at their
no-dropout limit), every amount the same, every acquisition cost 0 (no CLV : CAC, no ROI), survey answers all before the report
period (no NPS), one-purchase customers (no spread of inter-purchase times). Each command's
screen must say so in words, and each JSON file it writes must be strict JSON (``null``, never
the ``NaN`` / ``Infinity`` tokens), each CSV free of ``nan`` / ``inf`` cells.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from clv.cli import app

runner = CliRunner()
NOT_A_NUMBER = re.compile(r"(?<![\w.])(nan|NaN|inf|-inf|Infinity)(?![\w])")


def _log(folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(7)
    rows = []
    for c in range(300):
        start = pd.Timestamp("2021-01-01") + pd.Timedelta(days=int(rng.integers(0, 90)))
        days = np.sort(rng.integers(1, 600, size=rng.poisson(2.5)))
        rows += [(f"c{c}", start + pd.Timedelta(days=int(d))) for d in [0, *days]]
    paths = {name: folder / f"{name}.csv" for name in ("log", "surveys", "costs")}
    log = pd.DataFrame(rows, columns=["customer_id", "date"]).assign(amount=10.0)
    log.to_csv(paths["log"], index=False)
    pd.DataFrame(
        {"customer_id": ["c1", "c2"], "date": ["2019-01-01", "2019-02-01"], "nps": [9, 3]}
    ).to_csv(paths["surveys"], index=False)
    pd.DataFrame({"customer_id": ["c1", "c2"], "acquisition_cost": [0.0, 0.0]}).to_csv(
        paths["costs"], index=False
    )
    return paths


def _strict_json(path: Path) -> None:
    def refuse(token: str) -> None:
        pytest.fail(f"{token} in {path}")

    json.loads(path.read_text(), parse_constant=refuse)


def _check_files(folder: Path) -> int:
    """Every JSON strict, every CSV without nan/inf cells; returns how many files were read."""
    seen = 0
    for path in sorted(folder.rglob("*")):
        if "/code/" in path.as_posix() or not path.is_file():
            continue  # the package source MLflow copies beside the model
        if path.suffix == ".json":
            _strict_json(path)
            seen += 1
        elif path.suffix == ".csv" and path.parent != folder:  # not the inputs
            cells = pd.read_csv(path, dtype=str, keep_default_na=False).to_numpy().ravel()
            bad = [c for c in cells if NOT_A_NUMBER.fullmatch(c.strip())]
            assert not bad, f"{path}: {bad[:3]}"
            seen += 1
    return seen


def _run(args: list[str]) -> str:
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    found = NOT_A_NUMBER.findall(result.output)
    assert not found, f"clv {args[0]} printed {found}:\n{result.output}"
    return " ".join(re.sub("[│┃]", " ", result.output).split())


def test_every_command_says_what_is_empty_and_writes_null(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    paths = _log(tmp_path)
    log = str(paths["log"])
    store = ["--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    config = tmp_path / "fast.yaml"
    config.write_text("train:\n  candidates: [bgnbd, pareto]\n  rolling_origin: false\n")
    fast = ["--config", str(config)]

    trained = _run(["train", *fast, "-t", log, "--as-of", "2022-06-30", "--model-dir", "m", *store])
    assert "no-dropout limit" in trained  # no one is seen leaving: a boundary, said in words
    _run(["evaluate", *fast, "-t", log, "--as-of", "2022-06-30", "--out", "scorecard.json"])
    _run(["score", "--model", "m", "-t", log, "--out", "scores.csv", *store])
    _run(["prepare", "-t", log, "--out", "prepared"])
    kpis = _run(
        [
            "kpis",
            "--model",
            "m",
            "-t",
            log,
            "--surveys",
            str(paths["surveys"]),
            "--costs",
            str(paths["costs"]),
            "--out",
            "report",
            *store,
        ]
    )
    assert "CLV : CAC none (the acquisition cost is 0)" in kpis
    assert "NPS none: no survey answers fall in" in kpis
    _run(["monitor", "--model", "m", "-t", log, "--out", "monitor", *store])
    _run(["models", "--name", "clv-log", *store])
    _run(["promote", "--name", "clv-log", "--version", "1", "--model-dir", "m", *store])

    html = (tmp_path / "report" / "report.html").read_text()
    assert not NOT_A_NUMBER.search(re.sub(r"<img[^>]*>", "", html))
    summary = json.loads((tmp_path / "report" / "kpis.json").read_text())
    assert summary["simple_clv"]["clv_to_cac"] is None
    assert summary["nps"]["nps"] is None
    assert _check_files(tmp_path) >= 10
