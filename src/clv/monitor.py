"""Monitoring a shipped model: its forecasts as of its training end against what happened since.

``clv monitor --model M --transactions NEWER_LOG`` takes the model's training end ``T0`` (the
last day of the log it was trained on), rebuilds every customer's features from the newer log
*as of T0* — what the model knew — and scores them over the window the newer log adds,
``(T0, end]``. Then it compares with what happened in that window:

- purchases: repeat transactions per customer in ``(T0, end]`` — MAE, RMSE, mean Poisson
  deviance, aggregate % error, by value segment and by calendar month (predicted purchases per
  month are the differences of the expected cumulative purchases at the month ends);
- churn: "no purchase in ``(T0, T0 + H]``" against ``churn_probability`` (H the churn model's
  horizon, cut to the window when it is shorter) — ROC AUC, Brier, expected calibration error
  and the reliability table;
- value: expected revenue over the window (undiscounted, margin 1) against actual revenue —
  top-decile capture and normalized Gini;
- drift: the population stability index (PSI) of each feature between the customers as of T0
  (the population the model was trained on) and as of today (the newer log's end), on ten
  quantile bins of the T0 population.

**When to retrain** (``retrain`` in the output; ``--fail-on-retrain`` makes it the exit code):
the aggregate purchase error is beyond ±20 %, or the churn ROC AUC fell more than 0.05 below
the one in the model's own holdout scorecard, or any feature's PSI exceeds 0.25 (the usual
threshold of a significant population shift).

Only customers whose first purchase is on or before T0 are forecast (the model says nothing
about customers acquired later); their count and the later ones' are reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from clv import metrics, units
from clv.bundle import Bundle
from clv.data.compact import CUSTOMER
from clv.data.log import TransactionLog
from clv.errors import DataValidationError
from clv.evaluation import purchase_metrics
from clv.features import build_calibration_holdout
from clv.models.groups import plain_models
from clv.predict import customer_features, score_rfm

MAX_AGGREGATE_ERROR_PCT = 20.0
MAX_AUC_DROP = 0.05
MAX_PSI = 0.25
_NOT_DRIFT = {CUSTOMER, "has_history"}


@dataclass
class Monitoring:
    """What :func:`monitor` found: the summary (JSON) and the tables behind the plots."""

    summary: dict[str, Any]
    customers: pd.DataFrame
    monthly: pd.DataFrame
    reliability: pd.DataFrame
    drift: pd.DataFrame
    cumulative: pd.DataFrame = field(default_factory=pd.DataFrame)


def population_stability(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """PSI = Σ (c − r) · ln(c / r) over quantile bins of ``reference`` (shares floored at 1e-4).

    >>> population_stability(np.arange(1000.0), np.arange(1000.0))
    0.0
    >>> round(population_stability(np.arange(1000.0), np.arange(500.0, 1500.0)), 3)
    4.346
    """
    reference = np.asarray(reference, dtype=float)
    current = np.asarray(current, dtype=float)
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    r = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1)
    c = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1)
    r = np.maximum(r / r.sum(), 1e-4)
    c = np.maximum(c / c.sum(), 1e-4)
    return float(np.sum((c - r) * np.log(c / r)))


def monitor(
    bundle: Bundle, log: TransactionLog, attributes: pd.DataFrame | None = None
) -> Monitoring:
    """Compare a model's forecasts as of its training end with a newer log (module docstring).

    ``attributes`` (``customer_id`` + columns) are what a model with covariates reads.

    Raises
    ------
    DataValidationError
        When the newer log ends on or before the model's training end.
    """
    unit = bundle.time_unit
    start = pd.Timestamp(bundle.fingerprint["last_date"])
    end = pd.Timestamp(log.report.last_date)
    if end <= start:
        raise DataValidationError(
            f"The log ends {end.date()}, not after the model's training end {start.date()}: "
            "there is nothing to compare the forecasts with. Pass a newer log."
        )
    window = units.in_units((end - start).days, unit)
    then = customer_features(bundle, log, as_of=start, attributes=attributes)
    scores = score_rfm(bundle, then, horizon=window, interval=0)
    outcome = build_calibration_holdout(log.compact, start, end, unit)
    outcome = outcome.set_index(CUSTOMER).loc[scores[CUSTOMER]]
    actual = outcome["frequency_holdout"].to_numpy(dtype=float)
    predicted = scores["expected_purchases"].to_numpy()
    customers = scores[[CUSTOMER, "value_segment", "expected_purchases"]].assign(
        actual_purchases=actual
    )
    summary: dict[str, Any] = {
        "model": dict(bundle.registry) or {"registered_model": None},
        "training_end": str(start.date()),
        "window": {"from": str(start.date()), "to": str(end.date()), "length": window},
        "time_unit": unit,
        "customers_forecast": len(scores),
        "customers_acquired_after_training": int(log.report.customers - len(scores)),
        "purchases": _purchases(actual, predicted),
    }
    summary["purchases_by_segment"] = {
        str(name): _purchases(actual[rows], predicted[rows])
        for name, rows in customers.groupby("value_segment").indices.items()
    }
    if "clv" in scores and "revenue_holdout" in outcome:
        revenue = outcome["revenue_holdout"].to_numpy(dtype=float)
        value = scores["clv"].to_numpy()  # undiscounted, margin 1: expected revenue
        customers["expected_revenue"], customers["actual_revenue"] = value, revenue
        summary["value"] = {
            "top_decile_capture": metrics.top_decile_capture(revenue, value),
            "normalized_gini": metrics.normalized_gini(revenue, value),
            "predicted_revenue": float(value.sum()),
            "actual_revenue": float(revenue.sum()),
        }
    reliability = pd.DataFrame()
    if "churn_probability" in scores:
        horizon = min(bundle.churn.horizon, window)
        label_end = start + pd.Timedelta(days=units.whole_days(horizon, unit))
        churned = _no_purchase(log, scores[CUSTOMER], start, label_end)
        probability = scores["churn_probability"].to_numpy()
        customers["churn_probability"], customers["churned"] = probability, churned
        reliability = metrics.reliability_curve(churned, probability)
        trained = bundle.scorecard.get("churn", {}).get("churn_model", {}).get("roc_auc")
        summary["churn"] = {
            "horizon": horizon,
            "label_end": str(label_end.date()),
            "churn_rate": float(churned.mean()),
            "roc_auc": metrics.roc_auc(churned, probability),
            "brier": metrics.brier(churned, probability),
            "ece": metrics.expected_calibration_error(churned, probability),
            "roc_auc_at_training": trained,
        }
        if horizon < bundle.churn.horizon:
            summary["churn"]["note"] = (
                f"the window ({window:g} {unit}s) is shorter than the churn horizon "
                f"({bundle.churn.horizon:g}): labels cover the window only"
            )
    monthly, cumulative = _by_month(bundle, log, then, scores, start, end)
    now = customer_features(bundle, log, as_of=end)
    drift = pd.DataFrame(
        [
            {"feature": c, "psi": population_stability(then[c], now[c])}
            for c in then.columns
            if c not in _NOT_DRIFT and c in now and pd.api.types.is_numeric_dtype(then[c])
        ]
    )
    summary["drift"] = dict(zip(drift["feature"], drift["psi"], strict=True))
    summary["retrain"], summary["reasons"] = _retrain(summary)
    summary["rule"] = (
        f"retrain when |aggregate purchase error| > {MAX_AGGREGATE_ERROR_PCT:g} %, the churn "
        f"ROC AUC falls more than {MAX_AUC_DROP:g} below the training scorecard's, or any "
        f"feature's PSI > {MAX_PSI:g}"
    )
    return Monitoring(summary, customers, monthly, reliability, drift, cumulative)


def model_title(model: dict[str, Any]) -> str:
    """``clv-cdnow v3`` for a registered model, else a plain description."""
    if model.get("registered_model"):
        return f"{model['registered_model']} v{model['version']}"
    return "an unregistered bundle"


def _purchases(actual: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """The scorecard's purchase metrics (:func:`clv.evaluation.purchase_metrics`) and a count."""
    return {"customers": len(actual), **purchase_metrics(actual, predicted)}


def _no_purchase(
    log: TransactionLog, ids: pd.Series, start: pd.Timestamp, end: pd.Timestamp
) -> np.ndarray:
    from clv.churn import churn_labels

    return churn_labels(log.compact, ids, start, end)


def _by_month(
    bundle: Bundle,
    log: TransactionLog,
    then: pd.DataFrame,
    scores: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predicted vs actual repeat purchases per calendar month of the window, and cumulated."""
    unit = units.days(1.0, bundle.time_unit)
    bounds = pd.date_range(start, end, freq="ME").union([end])
    bounds = bounds[bounds > start]
    x, t_x, T = (then[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    groups = plain_models(bundle.purchase, None, then)  # one, or one per covariate group
    expected = [
        sum(
            float(m.expected_purchases((b - start).days / unit, x[r], t_x[r], T[r]).sum())
            for r, m, _ in groups
        )
        for b in bounds
    ]
    frame = log.frame
    later = frame[(frame["date"] > start) & (frame["date"] <= end)]
    later = later[later[CUSTOMER].isin(set(scores[CUSTOMER]))]
    month_end = later["date"].dt.to_period("M").dt.to_timestamp(how="end").dt.normalize()
    month_end = month_end.clip(upper=end)
    counts = later.groupby(month_end).size().reindex(bounds.normalize(), fill_value=0)
    cumulative = pd.DataFrame(
        {
            "to": [str(b.date()) for b in bounds],
            "predicted": expected,
            "actual": np.cumsum(counts.to_numpy()).astype(float),
        }
    )
    monthly = pd.DataFrame(
        {
            "month": [b.strftime("%Y-%m") for b in bounds],
            "predicted": np.diff(np.r_[0.0, expected]),
            "actual": counts.to_numpy().astype(float),
        }
    )
    return monthly, cumulative


def _retrain(summary: dict[str, Any]) -> tuple[bool, list[str]]:
    reasons = []
    error = summary["purchases"]["aggregate_error_pct"]
    if np.isfinite(error) and abs(error) > MAX_AGGREGATE_ERROR_PCT:
        reasons.append(f"aggregate purchase error {error:+.1f} %")
    churn = summary.get("churn")
    if churn and churn["roc_auc_at_training"] is not None:
        drop = churn["roc_auc_at_training"] - churn["roc_auc"]
        if drop > MAX_AUC_DROP:
            reasons.append(f"churn ROC AUC fell by {drop:.3f}")
    reasons += [f"PSI of {k} {v:.2f}" for k, v in summary["drift"].items() if v > MAX_PSI]
    return bool(reasons), reasons


#: The monitoring tables, each written as ``<name>.csv`` when it has rows.
_TABLES = ("customers", "monthly", "reliability", "drift", "cumulative")
#: Every file :func:`write_monitoring` may write into its folder.
MONITOR_FILES = ("monitor.html", "monitor.json", *(f"{name}.csv" for name in _TABLES))


def write_monitoring(result: Monitoring, directory: Any) -> list[Any]:
    """Write ``monitor.json``, the tables as CSV (``customers.csv``: each customer's forecast and
    outcome) and a self-contained ``monitor.html``."""
    from pathlib import Path

    from clv.tables import write_json, write_table, write_text

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = [write_text(render_html(result), directory / "monitor.html")]
    paths.append(write_json(result.summary, directory / "monitor.json"))
    for name in _TABLES:
        table = getattr(result, name)
        if len(table):
            paths.append(write_table(table, directory / f"{name}.csv"))
    return paths


def render_html(result: Monitoring) -> str:
    """One offline page: headline numbers, the decision, and three charts."""
    import html

    from matplotlib.figure import Figure

    from clv.report import html_table, png_data_uri

    s = result.summary
    images = {}
    fig = Figure(figsize=(8, 3.4), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(
        pd.to_datetime(result.cumulative["to"]), result.cumulative["actual"], "o-", label="actual"
    )
    ax.plot(
        pd.to_datetime(result.cumulative["to"]),
        result.cumulative["predicted"],
        "s--",
        label="forecast",
    )
    ax.set(title="Cumulative repeat purchases since training", ylabel="purchases")
    ax.legend()
    images["Forecast vs actual"] = png_data_uri(fig)
    if len(result.reliability):
        fig = Figure(figsize=(5, 4), layout="constrained")
        ax = fig.add_subplot()
        curve = result.reliability
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.plot(curve["mean_predicted"], curve["observed_rate"], "o-")
        ax.set(title="Churn calibration", xlabel="predicted", ylabel="observed")
        images["Churn calibration by decile"] = png_data_uri(fig)
    fig = Figure(figsize=(8, 3.4), layout="constrained")
    ax = fig.add_subplot()
    colors = ["#c0392b" if v > MAX_PSI else "#2e86c1" for v in result.drift["psi"]]
    ax.barh(result.drift["feature"], result.drift["psi"], color=colors)
    ax.axvline(MAX_PSI, color="grey", linestyle=":")
    ax.set(title="Population stability index (training → today)", xlabel="PSI")
    images["Drift"] = png_data_uri(fig)
    verdict = "Retrain advised: " + "; ".join(s["reasons"]) if s["retrain"] else "No retrain needed"
    figures = "".join(
        f"<h2>{html.escape(k)}</h2><img alt='{html.escape(k)}' src='{v}'>"
        for k, v in images.items()
    )
    headline = pd.DataFrame([{"scope": "all", **s["purchases"]}])
    segments = pd.DataFrame([{"segment": k, **v} for k, v in s["purchases_by_segment"].items()])
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>clv monitor</title>"
        "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px}</style>"
        f"</head><body><h1>Monitoring {html.escape(model_title(s['model']))}</h1>"
        f"<p>Forecast as of {s['training_end']}, compared with {s['window']['from']} .. "
        f"{s['window']['to']} ({s['customers_forecast']:,} customers; "
        f"{s['customers_acquired_after_training']:,} acquired later, not forecast).</p>"
        f"<p><b>{html.escape(verdict)}</b>. Rule: {html.escape(s['rule'])}.</p>"
        f"<h2>Purchases</h2>{html_table(headline)}<h2>By value segment</h2>{html_table(segments)}"
        f"<h2>By month</h2>{html_table(result.monthly)}{figures}</body></html>"
    )
