"""Shared fixtures: the raw CDNOW sample through clv's own cleaning and features."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from clv.config import DataConfig
from clv.data import TransactionLog, load_transactions
from clv.features import build_calibration_holdout

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"

APPAREL = Path(__file__).resolve().parents[2] / "shared" / "data" / "apparel"
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
def _mlflow_store(tmp_path_factory) -> None:
    """Tests never write to ./mlflow.db: every run goes to a throw-away sqlite store."""
    store = tmp_path_factory.mktemp("mlflow")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"


@pytest.fixture(scope="session")
def apparel_dir() -> Path:
    """The shared apparel log; tests using it skip when it is absent."""
    if not (APPAREL / "transactions.csv").is_file():
        pytest.skip(f"shared apparel data not found at {APPAREL}")
    return APPAREL
