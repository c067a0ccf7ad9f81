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
:class:`~clv.errors.BundleError` on a foreign, damaged, mixed or newer bundle. The manifest is
read within limits (:func:`clv.jsonio.read_json`) and carries the SHA-256 of its own canonical
JSON (format 3 on), so a manifest edited by hand or damaged in any byte that matters is refused
with the reason, never loaded with other numbers, and never ends in a traceback.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from clv.churn import ChurnModel
from clv.errors import BundleError
from clv.jsonio import read_json, strict
from clv.locks import folder_lock
from clv.models.ensemble import EnsembleModel
from clv.models.fitted import PurchaseModel
from clv.models.fitting import purchase_model_from_dict
from clv.models.gamma_gamma import SpendModel
from clv.models.spend_covariates import CovariateSpendModel, spend_model_from_dict
from clv.outputs import check_replaceable_folder
from clv.tables import (
    leftover_name,
    remove_leftovers,
    replace_dir,
    restore_interrupted,
    write_json,
    write_text,
)

FORMAT = "clv-bundle"
#: Version 2 added the files' SHA-256 to the manifest, version 3 the manifest's own
#: (``checksum``); bundles of versions 1 and 2 are still read.
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
#: What the manifest's fields must be (beyond ``format`` and ``format_version``).
_FIELDS: dict[str, tuple[type, ...]] = {
    "purchase_model": (dict,),
    "spend_model": (dict, type(None)),
    "churn_model": (dict, type(None)),
    "config": (dict,),
    "data_fingerprint": (dict,),
    "cleaning_report": (dict,),
    "model_selection": (dict,),
    "notices": (list,),
    "scorecard": (dict,),
    "value_segments": (dict, type(None)),
    "registry": (dict, type(None)),
    "package_versions": (dict,),
    "created": (str,),
    "files": (dict,),
}
#: Fields a manifest of every readable version has.
_REQUIRED = ("purchase_model", "spend_model", "config", "data_fingerprint")
_EXPECTED = (
    f"this clv reads bundle format versions {', '.join(map(str, READABLE_VERSIONS))} "
    f"(it writes {FORMAT_VERSION})"
)
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
    manifest = strict(
        bundle.to_dict() | {"files": {k: _sha256(p) for k, p in sorted(files.items())}}
    )
    write_json(manifest | {"checksum": manifest_checksum(manifest)}, folder / MANIFEST)
    return folder


def manifest_checksum(manifest: Mapping[str, Any]) -> str:
    """SHA-256 of the manifest's canonical JSON (sorted keys, no spaces), ``checksum`` left
    out: what format 3 stores in ``checksum`` and loading recomputes."""
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def not_of_a_bundle(folder: Path) -> list[str]:
    """The entries of ``folder`` that are not a clv bundle's: all of them when there is no
    ``bundle.json`` or it names another format; else those the manifest does not list beside
    the bundle files' names (a damaged manifest lists nothing, so only those names pass:
    retraining over a damaged bundle of clv's own is allowed)."""
    names = sorted(p.name for p in folder.iterdir())
    if MANIFEST not in names:
        return names
    listed: set[str] = set()
    try:
        manifest = read_json(folder / MANIFEST, BundleError)
    except BundleError:
        manifest = {"format": FORMAT}
    if manifest.get("format") != FORMAT:
        return names
    if isinstance(manifest.get("files"), dict):
        listed = set(manifest["files"])
    return [n for n in names if n not in {MANIFEST, BOOSTER, SCORECARD} | listed]


def check_bundle_folder(
    directory: str | Path, inputs: Iterable[Path] = (), option: str = "--model-dir"
) -> None:
    """Refuse a folder :func:`save_bundle` must not replace (:mod:`clv.outputs`): one that holds
    anything but a clv bundle, holds an input, or is ``/``, the home or the working folder."""
    check_replaceable_folder(directory, not_of_a_bundle, "a clv model bundle", inputs, option)


def save_bundle(bundle: Bundle, directory: str | Path) -> Path:
    """Put ``bundle`` at ``directory`` as a whole, replacing what was there.

    The files go to a hidden sibling folder, are flushed to disk, and the folder is swapped in
    (:func:`clv.tables.replace_dir`), under the folder's lock (:mod:`clv.locks`). Leftovers of
    killed runs beside ``directory`` are removed first.

    Raises
    ------
    clv.locks.LockedError
        If another process is writing ``directory``.
    clv.outputs.OutputPathError
        If ``directory`` is not a folder clv may replace (:func:`check_bundle_folder`).
    """
    directory = Path(directory)
    check_bundle_folder(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(directory, purpose="writing a model bundle"):
        check_bundle_folder(directory)  # as it is now that no other clv writes it
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
        if Path(name).name != name or name in ("", ".", ".."):
            raise BundleError(
                f"{directory / MANIFEST} is damaged: it lists {name!r}, which is not a file of "
                f"the folder; {_EXPECTED}. Retrain the model."
            )
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
        If the folder or manifest is missing, the manifest is damaged (too large, nested too
        deep, not JSON, a field of the wrong type, its checksum or a file's SHA-256 differs), the
        format is not a clv bundle, or its version is not one this clv reads.
    """
    directory = Path(directory)
    manifest = directory / MANIFEST
    if not manifest.is_file():
        raise BundleError(
            f"{directory} is not a clv model bundle (no {MANIFEST}). Train one with `clv train`."
        )
    data = read_json(manifest, BundleError, f"T{_EXPECTED[1:]}. Retrain the model.")
    found_format = data.get("format")
    if found_format != FORMAT:
        raise BundleError(f"{manifest} is not a clv bundle (format {found_format!r}).")
    found = data.get("format_version")
    if found not in READABLE_VERSIONS or isinstance(found, bool):
        raise BundleError(
            f"{manifest} has bundle format version {found!r}; {_EXPECTED}. Retrain the model "
            "with this clv (or use the clv that made it)."
        )
    _check_manifest(manifest, data, found)
    _verify(directory, data)
    try:
        return _bundle_from(directory, data, found)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, ArithmeticError) as exc:
        raise BundleError(
            f"{manifest} is damaged: {type(exc).__name__}: {exc}; {_EXPECTED}. Retrain the model."
        ) from None


def _check_manifest(manifest: Path, data: dict[str, Any], version: int) -> None:
    """The manifest's own checksum (format 3 on) and the types of its fields."""

    def damaged(why: str) -> BundleError:
        return BundleError(f"{manifest} is damaged: {why}; {_EXPECTED}. Retrain the model.")

    if version >= 3:
        stored = data.get("checksum")
        if not isinstance(stored, str):
            raise damaged("it has no checksum (bundles of format 3 carry their own SHA-256)")
        if stored != manifest_checksum(data):
            raise damaged(
                "its content does not match its checksum (it was edited or corrupted after "
                "training)"
            )
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise damaged(f"it lacks {', '.join(missing)}")
    for key, kinds in _FIELDS.items():
        if key in data and not isinstance(data[key], kinds):
            wanted = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
            raise damaged(f"{key} is a {type(data[key]).__name__}, where a {wanted} belongs")


def _bundle_from(directory: Path, data: dict[str, Any], version: int) -> Bundle:
    purchase = purchase_model_from_dict(data["purchase_model"])
    spend = spend_model_from_dict(data["spend_model"]) if data["spend_model"] else None
    churn = None
    if data.get("churn_model"):
        booster_path = directory / BOOSTER
        listed = BOOSTER in data.get("files", {}) or (version == 1 and booster_path.is_file())
        booster = booster_path.read_text() if listed else None
        churn = ChurnModel.from_dict(data["churn_model"], booster)
    return Bundle(
        purchase=purchase,
        spend=spend,
        config=data["config"],
        fingerprint=data["data_fingerprint"],
        cleaning=data.get("cleaning_report", {}),
        selection=data.get("model_selection", {}),
        notices=[str(n) for n in data.get("notices", [])],
        churn=churn,
        scorecard=data.get("scorecard", {}),
        segments=data.get("value_segments") or {},
        registry=data.get("registry") or {},
        versions=data.get("package_versions", {}),
        created=data.get("created", ""),
    )


def place_bundle(source: str | Path, target: str | Path, registry: dict[str, Any]) -> Path:
    """Put the bundle in ``source`` at ``target`` as a whole (:func:`save_bundle`), its manifest
    saying ``registry``; ``source`` (e.g. a staged bundle or a downloaded MLflow artifact) is
    left as it is."""
    return save_bundle(replace(load_bundle(source), registry=registry), target)
