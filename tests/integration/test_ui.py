"""The MLflow UI shows the project's runs: scripts/ui_smoke.py in headless Chromium."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.mark.browser
def test_runs_and_compare_pages_render(tmp_path, ui_smoke):
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    result = ui_smoke.main(tmp_path)  # raises if the REST API lacks a run, metric or plot
    assert len(result["runs"]) == 2
    for shot in map(Path, result["screenshots"]):
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 30_000, shot
