"""Shared fixtures (the raw CDNOW sample through clv's own cleaning and features) and the tiers.

The tests come in four tiers, one folder each, each also a marker (``pytest -m unit``):

- ``unit`` — pure functions on small hand-checkable inputs (metrics, CLV arithmetic, RFM, KPIs);
- ``contracts`` — data contracts: what clv accepts, refuses with a clear message, and writes
  (logs, bundles, score files);
- ``models`` — model behaviour: published values, lifetimes' fits, invariants, baselines on a
  real cutoff;
- ``integration`` — real services and processes: the CLI, MLflow (sqlite and a server), Spark,
  DVC, notebooks, killed runs, the UI.

``slow`` marks what starts a heavy service: Spark, DVC, an MLflow server, the notebooks
(``pytest -m "not slow"`` leaves them out while working; CI runs everything). Hypothesis runs
a fixed profile: derandomized, no deadline, so every run checks the same examples.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest
from hypothesis import settings

from clv.config import DataConfig
from clv.data import TransactionLog, load_transactions
from clv.features import build_calibration_holdout

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"

settings.register_profile("clv", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("clv")

TIERS = ("unit", "contracts", "models", "integration")
#: Test files that start Spark, DVC or run the notebooks; tests using an MLflow server are found
#: by their ``ui_smoke`` fixture.
SLOW_FILES = {"test_spark.py", "test_spark_engine.py", "test_pipeline.py", "test_notebooks.py"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier (its folder) and, when it starts a heavy service, ``slow``."""
    for item in items:
        path = Path(str(item.path))
        tier = path.parent.name
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))
        uses_server = "ui_smoke" in getattr(item, "fixturenames", ())
        if path.name in SLOW_FILES or path.suffix == ".ipynb" or uses_server:
            item.add_marker(pytest.mark.slow)


REPO = Path(__file__).resolve().parents[1]
APPAREL = REPO.parent / "shared" / "data" / "apparel"
CDNOW_CUTOFF = pd.Timestamp("1997-09-30")
CDNOW_END = pd.Timestamp("1998-06-30")


@pytest.fixture(scope="session")
def sample_log() -> TransactionLog:
    """The raw 2,357-customer CDNOW sample, cleaned (same-day purchases merged)."""
    return load_transactions("cdnow-sample", DataConfig())


@pytest.fixture(scope="session")
def sample_split(sample_log: TransactionLog) -> pd.DataFrame:
    """Calibration to 1997-09-30 (39 weeks), holdout to 1998-06-30 — the papers' split."""
    return build_calibration_holdout(sample_log.frame, CDNOW_CUTOFF, CDNOW_END, "week")


@pytest.fixture(autouse=True, scope="session")
def _mlflow_store(tmp_path_factory) -> str:
    """Tests never write to ./mlflow.db: every run goes to a throw-away sqlite store."""
    store = tmp_path_factory.mktemp("mlflow")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
    return os.environ["MLFLOW_TRACKING_URI"]


@pytest.fixture(autouse=True)
def _restore_tracking_uri(_mlflow_store: str):
    """A test that points MLflow at another store (``mlflow.set_tracking_uri``, which also sets
    $MLFLOW_TRACKING_URI; e.g. a server that it then stops) must not leave the next test pointing
    there: clv itself never changes MLflow's tracking URI for longer than a call."""
    yield
    if "mlflow" in sys.modules:
        sys.modules["mlflow"].set_tracking_uri(None)
    os.environ["MLFLOW_TRACKING_URI"] = _mlflow_store


@pytest.fixture(scope="session")
def apparel_dir() -> Path:
    """The shared apparel log; tests using it skip when it is absent."""
    if not (APPAREL / "transactions.csv").is_file():
        pytest.skip(f"shared apparel data not found at {APPAREL}")
    return APPAREL


def load_script(relative: str) -> ModuleType:
    """Import a script of the repository that is not part of the package (benchmarks/, scripts/)."""
    path = REPO / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # a dataclass of the script looks its module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def ui_smoke() -> ModuleType:
    """``scripts/ui_smoke.py``: the MLflow server helper and the UI smoke test."""
    return load_script("scripts/ui_smoke.py")
