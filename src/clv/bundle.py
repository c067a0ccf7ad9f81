"""Model bundles: a folder holding the models, the settings and the provenance of a training run.

- ``bundle.json``: format and version, the purchase, spend and churn models' parameters (JSON),
  the config, the data fingerprint, the cleaning report, the model selection and the scorecard;
- ``churn_model.txt``: the churn classifier's LightGBM booster in LightGBM's own text format;
- ``scorecard.json``: the holdout scorecard alone (what DVC and people read).

The manifest lists the SHA-256 of every other file, and loading verifies them. A bundle folder
is only ever replaced as a whole (:func:`save_bundle`): written to a hidden sibling folder,
flushed to disk, then swapped in, so a run killed at any moment leaves the previous bundle or
the new one — never a mix.

No pickle or dill. Loading checks the format name and version and fails with a
:class:`~clv.errors.BundleError` on a foreign, damaged, mixed or newer bundle.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from clv.churn import ChurnModel
from clv.errors import BundleError
from clv.locks import folder_lock
from clv.models.ensemble import EnsembleModel
from clv.models.fitted import PurchaseModel
from clv.models.fitting import purchase_model_from_dict
from clv.models.gamma_gamma import SpendModel
from clv.models.spend_covariates import CovariateSpendModel, spend_model_from_dict
from clv.tables import (
    leftover_name,
    remove_leftovers,
    replace_dir,
    restore_interrupted,
    write_json,
    write_text,
)

FORMAT = "clv-bundle"
#: Version 2 added the files' SHA-256 to the manifest; version 1 bundles are still read.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MANIFEST = "bundle.json"
BOOSTER = "churn_model.txt"
SCORECARD = "scorecard.json"
_PACKAGES = (
    "clv",
    "lifetimes",
    "numpy",
    "scipy",
    "pandas",
    "duckdb",
    "pyarrow",
    "lightgbm",
    "scikit-learn",
)


def package_versions() -> dict[str, str]:
    """Versions of the packages a bundle's numbers depend on."""
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


@dataclass(frozen=True)
class Bundle:
    """A trained clv model: purchase model, optional spend model, and how they were made.

    Parameters
    ----------
    purchase : PurchaseModel or EnsembleModel
        The chosen BTYD model (or the ensemble), fitted on the whole log.
    spend : SpendModel, CovariateSpendModel or None
        Gamma-Gamma, when the log has amounts.
    config : dict
        The settings of the training run.
    fingerprint : dict
        Row count, customers, date range and SHA-256 of the cleaned log.
    cleaning : dict
        The cleaning report.
    selection : dict
        The holdout comparison that chose the purchase model.
    notices : list of str
        Warnings raised while training (e.g. frequency–spend correlation).
    churn : ChurnModel or None
        The churn score shipped for scoring.
    scorecard : dict
        The holdout scorecard (:mod:`clv.evaluation`).
    registry : dict
        Registered model name, version and alias, and the MLflow run, once registered
        (written into the manifest when the bundle is moved to its folder).
    segments : dict
        Value-tier thresholds fixed on the training population
        (:func:`clv.predict.define_segments`); empty in bundles of older clv versions.
    """

    purchase: PurchaseModel | EnsembleModel
    spend: SpendModel | CovariateSpendModel | None
    config: dict[str, Any]
    fingerprint: dict[str, Any]
    cleaning: dict[str, Any] = field(default_factory=dict)
    selection: dict[str, Any] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    churn: ChurnModel | None = None
    scorecard: dict[str, Any] = field(default_factory=dict)
    segments: dict[str, Any] = field(default_factory=dict)
    registry: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=package_versions)
    created: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )

    @property
    def time_unit(self) -> str:
        """The unit of recency, T and t in the purchase model."""
        return self.purchase.time_unit

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest written to ``bundle.json``."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": self.created,
            "time_unit": self.time_unit,
            "purchase_model": self.purchase.to_dict(),
            "spend_model": self.spend.to_dict() if self.spend else None,
            "churn_model": self.churn.to_dict() if self.churn else None,
            "config": self.config,
            "data_fingerprint": self.fingerprint,
            "cleaning_report": self.cleaning,
            "model_selection": self.selection,
            "notices": list(self.notices),
            "scorecard": self.scorecard,
            "value_segments": self.segments,
            "registry": self.registry,
            "package_versions": self.versions,
        }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_bundle_files(bundle: Bundle, folder: str | Path) -> Path:
    """Write the bundle's files into ``folder`` (a new, private folder), the manifest last with
    the SHA-256 of the others. :func:`save_bundle` is the way to put a bundle in its place."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {SCORECARD: write_json(bundle.scorecard, folder / SCORECARD)}
    if bundle.churn is not None and bundle.churn.booster_text is not None:
        files[BOOSTER] = write_text(bundle.churn.booster_text, folder / BOOSTER)
    manifest = bundle.to_dict() | {"files": {k: _sha256(p) for k, p in sorted(files.items())}}
    write_json(manifest, folder / MANIFEST)
    return folder


def save_bundle(bundle: Bundle, directory: str | Path) -> Path:
    """Put ``bundle`` at ``directory`` as a whole, replacing what was there.

    The files go to a hidden sibling folder, are flushed to disk, and the folder is swapped in
    (:func:`clv.tables.replace_dir`), under the folder's lock (:mod:`clv.locks`). Leftovers of
    killed runs beside ``directory`` are removed first.

    Raises
    ------
    clv.locks.LockedError
        If another process is writing ``directory``.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(directory, purpose="writing a model bundle"):
        restore_interrupted(directory)
        remove_leftovers(directory)
        staging = leftover_name(directory, "staging")
        try:
            write_bundle_files(bundle, staging)
            replace_dir(staging, directory)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # gone already unless something failed
    return directory


def _verify(directory: Path, data: dict[str, Any]) -> None:
    """Check the files the manifest lists against their SHA-256 (bundles of format 2 on)."""
    listed = data.get("files")
    if data.get("format_version", 1) >= 2 and not isinstance(listed, dict):
        raise BundleError(f"{directory / MANIFEST} is damaged: it lists no files.")
    for name, expected in (listed or {}).items():
        path = directory / name
        if not path.is_file():
            raise BundleError(
                f"{path} is missing from the bundle (the manifest lists it). Retrain the model "
                "or copy the whole folder again."
            )
        if _sha256(path) != expected:
            raise BundleError(
                f"{path} does not match the bundle's manifest (SHA-256 differs): the folder "
                "mixes files of different trainings or was edited. Retrain the model or copy "
                "the whole folder again."
            )


def load_bundle(directory: str | Path) -> Bundle:
    """Read a bundle written by :func:`save_bundle`.

    Raises
    ------
    BundleError
        If the folder or manifest is missing, the JSON is damaged, the format is not a clv
        bundle, or its version is not one this clv reads.
    """
    directory = Path(directory)
    manifest = directory / MANIFEST
    if not manifest.is_file():
        raise BundleError(
            f"{directory} is not a clv model bundle (no {MANIFEST}). Train one with `clv train`."
        )
    try:
        data = json.loads(manifest.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(
            f"{manifest} is damaged (not valid JSON: {exc}). Retrain the model."
        ) from None
    found_format = data.get("format") if isinstance(data, dict) else None
    if found_format != FORMAT:
        raise BundleError(f"{manifest} is not a clv bundle (format {found_format!r}).")
    found = data.get("format_version")
    if found not in READABLE_VERSIONS:
        raise BundleError(
            f"{manifest} has bundle format version {found!r}; this clv reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}. Retrain the model with this clv (or use "
            "the clv that made it)."
        )
    _verify(directory, data)
    try:
        purchase = purchase_model_from_dict(data["purchase_model"])
        spend = spend_model_from_dict(data["spend_model"]) if data["spend_model"] else None
        churn = None
        if data.get("churn_model"):
            booster_path = directory / BOOSTER
            listed = BOOSTER in data.get("files", {}) or (found == 1 and booster_path.is_file())
            booster = booster_path.read_text() if listed else None
            churn = ChurnModel.from_dict(data["churn_model"], booster)
        return Bundle(
            purchase=purchase,
            spend=spend,
            config=data["config"],
            fingerprint=data["data_fingerprint"],
            cleaning=data.get("cleaning_report", {}),
            selection=data.get("model_selection", {}),
            notices=list(data.get("notices", [])),
            churn=churn,
            scorecard=data.get("scorecard", {}),
            segments=data.get("value_segments") or {},
            registry=data.get("registry") or {},
            versions=data.get("package_versions", {}),
            created=data.get("created", ""),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(
            f"{manifest} is damaged: {type(exc).__name__}: {exc}. Retrain the model."
        ) from None


def place_bundle(source: str | Path, target: str | Path, registry: dict[str, Any]) -> Path:
    """Put the bundle in ``source`` at ``target`` as a whole (:func:`save_bundle`), its manifest
    saying ``registry``; ``source`` (e.g. a staged bundle or a downloaded MLflow artifact) is
    left as it is."""
    return save_bundle(replace(load_bundle(source), registry=registry), target)
