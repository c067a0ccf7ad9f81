"""The scorecard's metrics of one forecast, the names of its rows, and the baselines: the naive
rate and the conditional expectations by calibration frequency."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from clv import metrics
from clv.config import Config
from clv.data.compact import day_number
from clv.data.log import TransactionLog
from clv.evaluation.split import CalibrationTable, Split
from clv.models.registry import display_name

NAIVE = "naive"


#: The key of the spend model in the scorecard's ``dropped`` (models that did not converge).
SPEND = "gamma_gamma"


LABELS = {
    NAIVE: "naive rate",
    "churn_model": "churn model (shipped score)",
    "lightgbm": "LightGBM (raw)",
}


def label(key: str) -> str:
    """Display name of a scorecard row key (``bgnbd`` → ``BG/NBD``)."""
    if key in LABELS:
        return LABELS[key]
    if key == SPEND:
        return "Gamma-Gamma"
    if key.endswith("_p_no_purchase"):
        return f"{display_name(key.removesuffix('_p_no_purchase'))} P(no purchase)"
    return display_name(key)


def purchase_metrics(
    actual: np.ndarray | metrics.Actual, predicted: np.ndarray
) -> dict[str, float | None]:
    """Mean Poisson deviance (None where infinite), RMSE, MAE, Spearman, aggregate % error and
    both totals (``actual`` as :class:`clv.metrics.Actual` to rank it once for several
    forecasts)."""
    deviance = metrics.poisson_deviance(actual, predicted)
    return {
        "poisson_deviance": deviance if np.isfinite(deviance) else None,
        "mae": metrics.mae(actual, predicted),
        "rmse": metrics.rmse(actual, predicted),
        "spearman": metrics.spearman(actual, predicted),
        "aggregate_error_pct": metrics.aggregate_error_pct(actual, predicted),
        "predicted_total": float(np.sum(predicted)),
        "actual_total": float(np.sum(metrics.Actual.of(actual).values)),
    }


def value_metrics(actual: np.ndarray | metrics.Actual, predicted: np.ndarray) -> dict[str, float]:
    """Spearman, normalized Gini, top-decile capture and MAE of holdout revenue (``actual`` as
    :class:`clv.metrics.Actual` to rank it once for several forecasts)."""
    ordered = metrics.ordering(np.asarray(predicted, dtype=float))  # one sort for three
    return {
        "spearman": metrics.spearman(actual, predicted, ordered.ranks),
        "normalized_gini": metrics.normalized_gini(actual, predicted, ordered.order),
        "top_decile_capture": metrics.top_decile_capture(actual, predicted, order=ordered.order),
        "mae": metrics.mae(actual, predicted),
    }


def churn_metrics(labels: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    """ROC AUC, PR AUC, Brier score and expected calibration error."""
    counts = metrics.threshold_counts(labels, probability)  # one sort for both curves
    return {
        "roc_auc": metrics.roc_auc(labels, probability, counts),
        "pr_auc": metrics.pr_auc(labels, probability, counts),
        "brier": metrics.brier(labels, probability),
        "ece": metrics.expected_calibration_error(labels, probability),
    }


def conditional_expectations(
    frequency: np.ndarray, actual: np.ndarray, predictions: dict[str, np.ndarray], cap: int = 7
) -> list[dict[str, Any]]:
    """Mean actual and mean predicted holdout purchases by calibration frequency 0 … cap−1, cap+.

    The classic check of a BTYD forecast (Fader, Hardie & Lee 2005, fig. 4): an aggregate error
    near 0 can hide a model that over-forecasts light buyers and under-forecasts heavy ones.

    >>> rows = conditional_expectations(np.array([0, 0, 9]), np.array([0.0, 1.0, 4.0]),
    ...                                 {"m": np.array([0.2, 0.2, 5.0])}, cap=2)
    >>> [(r["frequency"], r["customers"], r["actual"], r["m"]) for r in rows]
    [('0', 2, 0.5, 0.2), ('2+', 1, 4.0, 5.0)]
    """
    group = np.minimum(np.asarray(frequency, dtype=int), cap)
    rows = []
    for value in np.unique(group):
        members = group == value
        row: dict[str, Any] = {
            "frequency": f"{value}+" if value == cap else str(value),
            "customers": int(members.sum()),
            "actual": float(actual[members].mean()),
        }
        row |= {k: float(p[members].mean()) for k, p in predictions.items()}
        rows.append(row)
    return rows


def naive_rate(frequency: np.ndarray, T: np.ndarray, horizon: float) -> np.ndarray:
    """Naive forecast: the customer's past repeat rate ``x / T`` times the horizon (0 when T = 0).

    >>> naive_rate(np.array([2, 0, 1]), np.array([4.0, 3.0, 0.0]), 2.0).tolist()
    [1.0, 0.0, 0.0]
    """
    frequency = np.asarray(frequency, dtype=float)
    T = np.asarray(T, dtype=float)
    return np.divide(frequency, T, out=np.zeros_like(frequency), where=T > 0) * horizon


def customer_mean_spend(log: TransactionLog, cal: pd.DataFrame, split: Split) -> np.ndarray:
    """Each customer's mean spend over all calibration transactions (first one included).

    The customers with a purchase by the calibration end are exactly ``cal``'s, and both tables
    are sorted by id, so the rows line up (checked).
    """
    view = log.compact
    means = view.per_customer(
        "SELECT customer_id, AVG(amount) AS mean FROM tx WHERE day <= $end GROUP BY customer_id",
        {"end": day_number(split.calibration_end)},
    )
    if not means["customer_id"].equals(cal["customer_id"].reset_index(drop=True)):
        raise AssertionError("calibration customers and spend rows do not line up")
    return means["mean"].to_numpy(dtype=float)


def purchase_section(
    split: Split,
    table: CalibrationTable,
    predictions: dict[str, np.ndarray],
    ranked: metrics.Actual,
    config: Config,
) -> dict[str, Any]:
    """The scorecard's protocol and purchases: every forecast's metrics beside the all-zero
    forecast's, and the conditional expectations by calibration frequency."""
    return {
        "protocol": {
            "calibration_end": str(split.calibration_end.date()),
            "observation_end": str(split.observation_end.date()),
            "holdout_length": split.duration,
            "time_unit": config.features.time_unit,
            "customers": len(table.frame),
        },
        "purchases": {k: purchase_metrics(ranked, p) for k, p in predictions.items()},
        # MAE rewards forecasting too little (the median of sparse counts is 0): this is the MAE
        # of forecasting no purchase for anyone, printed beside every model's
        "zero_forecast": purchase_metrics(ranked, np.zeros_like(table.actual)),
        "conditional_expectations": conditional_expectations(
            table.frame["frequency"].to_numpy(), table.actual, predictions
        ),
        "selection_metric": config.train.selection_metric,
    }
