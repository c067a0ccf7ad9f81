"""Damaged and hostile bundles: every one ends in a ClvError that names the file, or in the
original's scores — never a traceback, never other numbers.

A bundle trained by the CLI on the CDNOW sample (with its LightGBM churn model) is mutated by
hypothesis — the manifest truncated, nested deep, a field given a wrong type, a huge number, a
non-finite one, an unknown version, a field removed or added, a file removed, added or flipped —
and handed to ``clv score`` and to the MLflow pyfunc loader. Bundles of format 2 (no checksum of
their own) are mutated too, in what their loader checks: the file as a whole, the version, the
manifest's fields and their types, the files. (A value edited inside a format-2 model section
cannot be told from a trained one: format 3's checksum is what catches that.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from clv.bundle import BOOSTER, MANIFEST, SCORECARD
from clv.cli import app
from clv.errors import ClvError
from clv.pyfunc import ClvModel

runner = CliRunner()
RFM = pd.DataFrame(
    {
        "customer_id": ["a", "b", "c"],
        "frequency": [0.0, 2.0, 7.0],
        "recency": [0.0, 30.4, 38.0],
        "T": [38.9, 38.9, 39.0],
        "monetary_value": [0.0, 25.0, 40.0],
    }
)
OUTCOMES: dict[str, int] = {}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, sample_log):
    """A bundle with every part (purchase, spend, churn booster), the log it scores, and the
    original's scores by the CLI and by the pyfunc model."""
    home = tmp_path_factory.mktemp("damaged")
    log = home / "log.csv"
    sample_log.frame.head(3000).to_csv(log, index=False)
    model = home / "model"
    result = runner.invoke(
        app, ["train", "--transactions", str(log), "--no-mlflow", "--model-dir", str(model)]
    )
    assert result.exit_code == 0, result.output
    assert (model / BOOSTER).is_file()
    out = home / "scores.csv"
    assert _score(model, log, out).exit_code == 0
    return SimpleNamespace(
        home=home, model=model, log=log, scores=pd.read_csv(out), pyfunc=_pyfunc(model)
    )


def _score(model: Path, log: Path, out: Path):
    return runner.invoke(
        app, ["score", "--model", str(model), "--transactions", str(log), "--out", str(out)]
    )


def _pyfunc(model: Path) -> pd.DataFrame:
    clv = ClvModel()
    clv.load_context(SimpleNamespace(artifacts={"bundle": str(model)}))
    return clv.predict(None, RFM)


def _paths(tree, prefix=()):
    """Every path to a value in a JSON tree."""
    yield prefix
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _paths(v, (*prefix, i))


def _set(tree, path, value):
    if not path:
        return value
    node = tree
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return tree


WRONG = st.sampled_from(
    ["text", [], {}, None, [1, 2], {"x": 1}, 1e308, -1.0, 0, 10**400, float("nan"), "NaN"]
)
MUTATIONS = st.sampled_from(
    [
        "truncate",
        "nest",
        "value",
        "remove",
        "add",
        "version",
        "drop_file",
        "extra_file",
        "flip_booster",
    ]
)


def _mutate(folder: Path, data, kind: str, draw, top_only: bool) -> str:
    """Damage the bundle in ``folder`` (whose manifest is ``data``; with ``top_only``, its
    fields as a whole); return what was done."""
    manifest = folder / MANIFEST
    text = manifest.read_text()
    if kind == "truncate":
        cut = draw(st.integers(0, len(text) - 1))
        manifest.write_text(text[:cut])
        return f"truncated at {cut}"
    if kind == "nest":
        depth = draw(st.sampled_from([70, 10_000, 200_000]))
        manifest.write_text("[" * depth + text + "]" * depth)
        return f"nested {depth}"
    paths = [p for p in list(_paths(data))[1:] if len(p) == 1 or not top_only]
    if kind in ("value", "remove"):
        path = draw(st.sampled_from(paths))
        if kind == "value":
            value = draw(WRONG)
            _set(data, path, value)
            what = f"{path} = {value!r}"[:200]
        else:
            parent = data
            for step in path[:-1]:
                parent = parent[step]
            del parent[path[-1]]
            what = f"removed {path}"
        manifest.write_text(json.dumps(data))
        return what
    if kind == "add":
        data[draw(st.sampled_from(["extra", "purchase_model"]))] = draw(WRONG)
        manifest.write_text(json.dumps(data))
        return "added a field"
    if kind == "version":
        data["format_version"] = draw(st.sampled_from([0, 4, 99, -1, "3", 3.0, True, None]))
        manifest.write_text(json.dumps(data))
        return f"version {data['format_version']!r}"
    if kind == "drop_file":
        name = draw(st.sampled_from([BOOSTER, SCORECARD]))
        (folder / name).unlink()
        return f"removed {name}"
    if kind == "extra_file":
        (folder / "notes.txt").write_text("x")
        return "an extra file"
    booster = (folder / BOOSTER).read_bytes()
    at = draw(st.integers(0, len(booster) - 1))
    (folder / BOOSTER).write_bytes(booster[:at] + bytes([booster[at] ^ 0x20]) + booster[at + 1 :])
    return f"flipped booster byte {at}"


def _checked(trained, folder: Path, what: str) -> None:
    """``clv score`` and the pyfunc loader each end in a ClvError or the original's scores."""
    out = folder.parent / "out.csv"
    out.unlink(missing_ok=True)
    result = _score(folder, trained.log, out)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        what,
        repr(result.exception),
    )
    if result.exit_code == 0:
        pd.testing.assert_frame_equal(pd.read_csv(out), trained.scores, obj=what)
        OUTCOMES["clv score: same scores"] = OUTCOMES.get("clv score: same scores", 0) + 1
    else:
        assert result.exit_code == 1 and "Error:" in result.output, (what, result.output)
        assert not out.exists()
        OUTCOMES["clv score: ClvError"] = OUTCOMES.get("clv score: ClvError", 0) + 1
    try:
        scores = _pyfunc(folder)
    except ClvError as exc:
        assert str(folder) in str(exc) or "bundle" in str(exc), (what, str(exc))
        OUTCOMES["pyfunc: ClvError"] = OUTCOMES.get("pyfunc: ClvError", 0) + 1
    else:
        pd.testing.assert_frame_equal(scores, trained.pyfunc, obj=what)
        OUTCOMES["pyfunc: same scores"] = OUTCOMES.get("pyfunc: same scores", 0) + 1


@settings(max_examples=60, suppress_health_check=list(HealthCheck))
@given(kind=MUTATIONS, old_format=st.booleans(), data=st.data())
def test_a_mutated_bundle_is_refused_or_scores_as_the_original(trained, kind, old_format, data):
    folder = trained.home / "mutated" / "model"
    shutil.rmtree(folder.parent, ignore_errors=True)
    shutil.copytree(trained.model, folder)
    manifest = json.loads((folder / MANIFEST).read_text())
    if old_format:  # a format-2 bundle: no checksum of its own, its fields' types checked
        del manifest["checksum"]
        manifest["format_version"] = 2
        (folder / MANIFEST).write_text(json.dumps(manifest))
    what = _mutate(folder, manifest, kind, data.draw, top_only=old_format)
    _checked(trained, folder, f"format {2 if old_format else 3}: {what}")


def test_the_mutations_reached_both_outcomes():
    """Run after the property (file order): both refusals and untouched scores were seen, so
    the property did not pass by refusing everything or by accepting everything."""
    print(OUTCOMES)
    assert sum(OUTCOMES.values()) >= 120
    assert OUTCOMES.get("clv score: ClvError", 0) > 0 and OUTCOMES.get("pyfunc: ClvError", 0) > 0
