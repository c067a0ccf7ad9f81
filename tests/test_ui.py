"""The MLflow UI shows the project's runs: scripts/ui_smoke.py in headless Chromium."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ui_smoke.py"


@pytest.mark.browser
def test_runs_and_compare_pages_render(tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    spec = importlib.util.spec_from_file_location("ui_smoke", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(tmp_path)  # raises if the REST API lacks a run, metric or plot
    assert len(result["runs"]) == 2
    for shot in map(Path, result["screenshots"]):
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 30_000, shot
