"""Typed settings, read from YAML (``configs/default.yaml``) and overridden from the CLI.

Every CLI option has a key here, so any run can be written down as a config file and repeated:
``clv train --config configs/my_run.yaml``. Options given on the command line win over the file,
and the file wins over the defaults below. Unknown keys are an error (a typo must not be
ignored silently).
"""

from __future__ import annotations

from clv.config.base import (
    DEFAULT_INTERVAL,
    DEFAULT_SEGMENTS,
    EMBEDDED_DATASETS,
    ONE_SIDED_Z_5PCT,
    SERVQUAL_DIMENSIONS,
)
from clv.config.data import DataConfig, FeaturesConfig
from clv.config.modelling import ChurnConfig, CovariatesConfig, ResourcesConfig, TrainConfig
from clv.config.outputs import KpiConfig, MlflowConfig, ScoreConfig
from clv.config.settings import Config, load_config

__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_SEGMENTS",
    "EMBEDDED_DATASETS",
    "ONE_SIDED_Z_5PCT",
    "SERVQUAL_DIMENSIONS",
    "ChurnConfig",
    "Config",
    "CovariatesConfig",
    "DataConfig",
    "FeaturesConfig",
    "KpiConfig",
    "MlflowConfig",
    "ResourcesConfig",
    "ScoreConfig",
    "TrainConfig",
    "load_config",
]
