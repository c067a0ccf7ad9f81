"""Bundles are plain JSON, round-trip exactly, and refuse foreign or damaged content."""

from __future__ import annotations

import json

import pytest

from clv.bundle import (
    FORMAT_VERSION,
    MANIFEST,
    Bundle,
    load_bundle,
    manifest_checksum,
    save_bundle,
)
from clv.errors import BundleError
from clv.models.fitting import fit_purchase_model
from clv.models.gamma_gamma import fit_spend_model


@pytest.fixture(scope="module")
def bundle(sample_split, sample_log) -> Bundle:
    return Bundle(
        purchase=fit_purchase_model("pareto", sample_split, "week"),
        spend=fit_spend_model(sample_split),
        config={"note": "test"},
        fingerprint=sample_log.fingerprint(),
        cleaning=sample_log.report.to_dict(),
    )


def test_round_trip_is_exact_and_json_only(bundle, tmp_path):
    path = save_bundle(bundle, tmp_path / "b")
    assert sorted(p.name for p in path.iterdir()) == [MANIFEST, "scorecard.json"]
    for file in path.iterdir():
        json.loads(file.read_text())  # all JSON: nothing pickled
    loaded = load_bundle(path)
    assert loaded.to_dict() == bundle.to_dict()
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["data_fingerprint"]["transactions"] == 6696
    assert len(manifest["data_fingerprint"]["sha256"]) == 64
    assert {"lifetimes", "pandas", "numpy"} <= set(manifest["package_versions"])


def test_fingerprint_changes_with_the_data(sample_log):
    from clv.data import TransactionLog

    changed = sample_log.frame.copy()
    changed.loc[0, "amount"] += 0.01
    assert (
        TransactionLog.from_frame(changed, sample_log.report).fingerprint()["sha256"]
        != sample_log.fingerprint()["sha256"]
    )


def test_a_logs_fingerprint_is_stable_across_versions(sample_log, monkeypatch):
    """Bundles and MLflow runs keep the fingerprint of their log: the same log must keep giving
    the same one (this value is the one clv has always given for the CDNOW sample), however
    many rows :func:`clv.data.compact.block_digest` hashes at a time."""
    import importlib

    compact = importlib.import_module("clv.data.compact")  # the module, not the function
    pinned = "d3c0df040889140c0a4d420ab2af3e5f4f3986d8b5b96e4c56be6184fa30c247"
    assert sample_log.fingerprint()["sha256"] == pinned
    for rows in (1, 7, 1000):
        monkeypatch.setattr(compact, "HASH_ROWS", rows)
        assert sample_log.fingerprint()["sha256"] == pinned


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        ("{not json", "damaged"),
        ('{"format": "mlflow"}', "not a clv bundle"),
        (
            '{"format": "clv-bundle", "format_version": 99}',
            "format version 99; this clv reads bundle format versions 1, 2, 3",
        ),
        (
            '{"format": "clv-bundle", "format_version": 1, "purchase_model": {"kind": "bgnbd"}}',
            "damaged",
        ),
    ],
)
def test_foreign_or_damaged_bundles_fail_clearly(tmp_path, content, pattern):
    (tmp_path / MANIFEST).write_text(content)
    with pytest.raises(BundleError, match=pattern):
        load_bundle(tmp_path)


def test_negative_parameters_are_damage(bundle, tmp_path):
    path = save_bundle(bundle, tmp_path / "b")
    data = json.loads((path / MANIFEST).read_text())
    data["purchase_model"]["params"]["r"] = -1.0
    (path / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(BundleError, match="does not match its checksum"):
        load_bundle(path)
    # written so by a writer with a bug (checksum sealed over the bad value): still refused
    (path / MANIFEST).write_text(json.dumps(data | {"checksum": manifest_checksum(data)}))
    with pytest.raises(BundleError, match="positive and finite"):
        load_bundle(path)


def test_a_folder_without_a_bundle_says_how_to_make_one(tmp_path):
    with pytest.raises(BundleError, match="clv train"):
        load_bundle(tmp_path / "missing")
