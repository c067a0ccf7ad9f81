"""All settings of a run, read from YAML and overridden from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator

from clv.config.base import _Section
from clv.config.data import DataConfig, FeaturesConfig
from clv.config.modelling import ChurnConfig, CovariatesConfig, ResourcesConfig, TrainConfig
from clv.config.outputs import KpiConfig, MlflowConfig, ScoreConfig
from clv.errors import DataValidationError


class Config(_Section):
    """All settings of a clv run."""

    data: DataConfig = Field(default_factory=DataConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    churn: ChurnConfig = Field(default_factory=ChurnConfig)
    covariates: CovariatesConfig = Field(default_factory=CovariatesConfig)
    score: ScoreConfig = Field(default_factory=ScoreConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    kpis: KpiConfig = Field(default_factory=KpiConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)

    @field_validator("train")
    @classmethod
    def _some_candidate(cls, value: TrainConfig) -> TrainConfig:
        if not value.candidates:
            raise ValueError("train.candidates must name at least one purchase model")
        return value

    def with_overrides(self, overrides: dict[str, Any]) -> Config:
        """Return a copy with dotted keys (``"data.customer_col"``) replaced; ``None`` is skipped.

        Parameters
        ----------
        overrides : dict
            Dotted keys to values, typically the options given on the command line.

        Returns
        -------
        Config
            A validated copy.

        Raises
        ------
        DataValidationError
            If a key is unknown or a value is invalid.
        """
        tree = self.model_dump()
        for key, value in overrides.items():
            if value is None:
                continue
            section, _, name = key.partition(".")
            if section not in tree or name not in tree[section]:
                raise DataValidationError(f"Unknown config key {key!r}.")
            tree[section][name] = value
        return _validate(tree, source="command-line options")

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as plain JSON-compatible values."""
        return self.model_dump(mode="json")


def _validate(tree: dict[str, Any], source: str) -> Config:
    try:
        return Config.model_validate(tree)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise DataValidationError(f"Invalid settings in {source}: {problems}.") from None


def load_config(path: str | Path | None = None) -> Config:
    """Read settings from a YAML file, or return the defaults when ``path`` is None.

    Parameters
    ----------
    path : str or Path, optional
        A YAML file with any of the sections ``data``, ``features``, ``train``, ``score``.

    Returns
    -------
    Config

    Raises
    ------
    DataValidationError
        If the file is missing, is not a YAML mapping, or holds unknown keys or invalid values.
    """
    if path is None:
        return Config()
    path = Path(path)
    if not path.is_file():
        raise DataValidationError(f"Config file {path} does not exist.")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise DataValidationError(f"Config file {path} is not valid YAML: {exc}") from None
    if not isinstance(tree, dict):
        raise DataValidationError(f"Config file {path} must hold a mapping of sections.")
    return _validate(tree, source=str(path))
