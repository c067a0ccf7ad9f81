"""Score tables in and out: the model a URI names, the finiteness check before any write, and
the atomic write of a score file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from clv.bundle import Bundle, load_bundle
from clv.data.compact import CUSTOMER
from clv.errors import ScoreError

#: Score columns that always hold a finite number when present (checked before every write).
NUMERIC_SCORE_COLUMNS = (
    "frequency",
    "recency",
    "T",
    "monetary_value",
    "p_alive",
    "expected_purchases",
    "expected_purchases_low",
    "expected_purchases_high",
    "p_no_purchase",
    "expected_avg_value",
    "clv",
    "clv_low",
    "clv_high",
    "churn_probability",
)


def check_finite(scores: pd.DataFrame, what: str = "The scores") -> None:
    """Refuse scores with a missing, NaN or infinite value where a number is promised.

    Raises
    ------
    ScoreError
        Naming each such column, how many customers, and the first one.
    """
    problems = []
    for col in NUMERIC_SCORE_COLUMNS:
        if col not in scores:
            continue
        values = pd.to_numeric(scores[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            who = scores[CUSTOMER].iloc[first] if CUSTOMER in scores else f"row {first + 1}"
            problems.append(
                f"{col!r}: {int(bad.sum()):,} customer(s), e.g. {who!r} ({values[first]})"
            )
    if problems:
        raise ScoreError(
            f"{what} hold values that are not finite numbers — {'; '.join(problems)}. Nothing "
            "was written. This points to implausible inputs (amounts or dates far outside the "
            "rest of the log) or a damaged model: check the cleaning report, or retrain."
        )


def write_scores(scores: pd.DataFrame, path: str | Path) -> Path:
    """Write a score table atomically (:func:`clv.tables.write_table`) after
    :func:`check_finite`: no score file ever holds NaN or inf where a number is promised."""
    from clv.tables import write_table

    check_finite(scores, f"The scores for {path}")
    return write_table(scores, path)


def load_model(uri: str | Path, tracking_uri: str | None = None) -> Bundle:
    """Load a bundle from a folder, or from MLflow (``models:/NAME@alias``, ``runs:/ID/model``).

    ``tracking_uri`` is where MLflow URIs are looked up (default: ``$MLFLOW_TRACKING_URI``, else
    ``sqlite:///mlflow.db`` in the working directory).
    """
    text = str(uri)
    if text.startswith(("models:/", "runs:/", "mlflow-artifacts:/")):
        from clv.mlflow_store import download_bundle

        return load_bundle(download_bundle(text, tracking_uri))
    return load_bundle(uri)
