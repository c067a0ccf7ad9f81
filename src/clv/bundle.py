"""Model bundles: a folder holding the models, the settings and the provenance of a training run.

- ``bundle.json``: format and version, the purchase, spend and churn models' parameters (JSON),
  the config, the data fingerprint, the cleaning report, the model selection and the scorecard;
- ``churn_model.txt``: the churn classifier's LightGBM booster in LightGBM's own text format;
- ``scorecard.json``: the holdout scorecard alone (what DVC and people read).

No pickle or dill. Loading checks the format name and version and fails with a
:class:`~clv.errors.BundleError` on a foreign, damaged or newer bundle.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from clv.btyd import EnsembleModel, PurchaseModel, purchase_model_from_dict
from clv.churn import ChurnModel
from clv.errors import BundleError
from clv.spend import SpendModel
from clv.tables import replace_dir, write_json, write_text

FORMAT = "clv-bundle"
FORMAT_VERSION = 1
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
    spend : SpendModel or None
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
    spend: SpendModel | None
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


def save_bundle(bundle: Bundle, directory: str | Path) -> Path:
    """Write ``bundle`` to ``directory`` (each file atomically, the manifest last).

    A stale churn booster from an earlier bundle in the same folder is removed.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    booster = bundle.churn.booster_text if bundle.churn else None
    if booster is not None:
        write_text(booster, directory / BOOSTER)
    else:
        (directory / BOOSTER).unlink(missing_ok=True)
    write_json(bundle.scorecard, directory / SCORECARD)
    write_json(bundle.to_dict(), directory / MANIFEST)
    return directory


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
    if found != FORMAT_VERSION:
        raise BundleError(
            f"{manifest} has bundle format version {found!r}; this clv reads version "
            f"{FORMAT_VERSION}. Retrain the model with this clv (or use the clv that made it)."
        )
    try:
        purchase = purchase_model_from_dict(data["purchase_model"])
        spend = SpendModel.from_dict(data["spend_model"]) if data["spend_model"] else None
        churn = None
        if data.get("churn_model"):
            booster_path = directory / BOOSTER
            booster = booster_path.read_text() if booster_path.is_file() else None
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
    """Put the bundle in ``source`` at ``target`` as a whole, its manifest saying ``registry``.

    ``source`` is consumed when it is a sibling staging folder of ``target`` (a name starting
    with a dot); any other folder (e.g. a downloaded MLflow artifact) is copied to one first.
    """
    source, target = Path(source), Path(target)
    if source.parent != target.parent or not source.name.startswith("."):
        staging = target.with_name(f".{target.name}.placing-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, staging)
        source = staging
    try:
        bundle = load_bundle(source)
        save_bundle(replace(bundle, registry=registry), source)
        replace_dir(source, target)
    finally:
        shutil.rmtree(source, ignore_errors=True)  # gone already unless something failed
    return target
