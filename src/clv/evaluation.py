"""Holdout metrics for purchase forecasts, and the naive baseline they are judged against.

For a calibration cutoff and a holdout of length h, each customer's predicted purchases in the
holdout are compared with the actual repeat transactions there (DOMAIN.md §3):

- MAE and RMSE over customers;
- aggregate % error: 100 × (Σ predicted − Σ actual) / Σ actual;
- the naive rate baseline predicts ``x / T × h`` (0 when T = 0).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class PurchaseScore:
    """Holdout accuracy of one purchase forecast."""

    model: str
    mae: float
    rmse: float
    aggregate_error_pct: float
    predicted_total: float
    actual_total: float

    def to_dict(self) -> dict[str, float | str]:
        """Return the score as a JSON-compatible dict."""
        return asdict(self)


def naive_rate(frequency: np.ndarray, T: np.ndarray, horizon: float) -> np.ndarray:
    """Naive forecast: the customer's past repeat rate ``x / T`` times the horizon.

    >>> naive_rate(np.array([2, 0, 1]), np.array([4.0, 3.0, 0.0]), 2.0).tolist()
    [1.0, 0.0, 0.0]
    """
    frequency = np.asarray(frequency, dtype=float)
    T = np.asarray(T, dtype=float)
    rate = np.divide(frequency, T, out=np.zeros_like(frequency), where=T > 0)
    return rate * horizon


def purchase_score(model: str, predicted: np.ndarray, actual: np.ndarray) -> PurchaseScore:
    """Score predicted against actual holdout purchases.

    >>> s = purchase_score("m", np.array([1.0, 3.0]), np.array([2, 2]))
    >>> (s.mae, s.rmse, s.aggregate_error_pct)
    (1.0, 1.0, 0.0)
    """
    predicted = np.asarray(predicted, dtype=float)
    actual = np.asarray(actual, dtype=float)
    error = predicted - actual
    actual_total = float(actual.sum())
    aggregate = 100.0 * (predicted.sum() - actual_total) / actual_total if actual_total else np.nan
    return PurchaseScore(
        model=model,
        mae=float(np.abs(error).mean()),
        rmse=float(np.sqrt((error**2).mean())),
        aggregate_error_pct=float(aggregate),
        predicted_total=float(predicted.sum()),
        actual_total=actual_total,
    )


def scores_table(scores: list[PurchaseScore]) -> pd.DataFrame:
    """Return scores as a table, one row per model."""
    return pd.DataFrame([s.to_dict() for s in scores])
