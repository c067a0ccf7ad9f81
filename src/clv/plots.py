"""Diagnostic plots of a training run, as matplotlib Figures (no pyplot global state).

Each function takes plain data and returns a :class:`matplotlib.figure.Figure`;
:mod:`clv.tracking` saves them as PNG artifacts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from clv import metrics
from clv.data.compact import CUSTOMER, DAY, Compact, compact, day_number
from clv.models.covariate_model import CovariateModel
from clv.models.fitted import PurchaseModel


def _figure(width: float = 6.4, height: float = 4.4) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def calibration_vs_holdout(table: list[dict[str, Any]], chosen: str | None = None) -> Figure:
    """Mean actual vs mean predicted holdout purchases by calibration frequency, every model
    (the scorecard's ``conditional_expectations``; FHL 2005, fig. 4)."""
    from clv.evaluation import label

    frame = pd.DataFrame(table)
    x = np.arange(len(frame))
    fig, ax = _figure()
    ax.plot(x, frame["actual"], "o-", color="black", label="actual", linewidth=2)
    for key in (c for c in frame.columns if c not in ("frequency", "customers", "actual")):
        style = "s-" if key == chosen else "--"
        ax.plot(x, frame[key], style, label=label(key) + (" (chosen)" if key == chosen else ""))
    ax.set_xticks(x, frame["frequency"].tolist())
    ax.set(
        xlabel="repeat purchases in calibration",
        ylabel="mean purchases in holdout",
        title="Conditional expectations: actual vs predicted",
    )
    ax.legend(fontsize="small")
    return fig


def cumulative_tracking(
    transactions: pd.DataFrame | Compact,
    model: PurchaseModel,
    calibration_end: pd.Timestamp,
    days_per_unit: float,
) -> Figure:
    """Cumulative repeat transactions over time: actual vs the model's population forecast.

    The forecast sums, over cohorts of customers by first-purchase day, the unconditional
    expected repeat purchases E[X(t − first)] of each cohort (customers first seen by the
    calibration end; the model is fitted on calibration data). Counts come from DuckDB on the
    compact log (:func:`clv.data.compact`), so a long log is never copied in pandas.
    """
    log = compact(transactions)
    cohort_sql = (
        f"SELECT {CUSTOMER}, MIN({DAY}) AS first_day FROM tx GROUP BY {CUSTOMER} "
        f"HAVING MIN({DAY}) <= $cal"
    )
    cal = {"cal": day_number(calibration_end)}
    cohorts = log.run(
        f"SELECT first_day, COUNT(*) AS n FROM ({cohort_sql}) AS c GROUP BY first_day "
        "ORDER BY first_day",
        cal,
    )
    repeats = log.run(
        f"""SELECT {DAY}, COUNT(*) AS n FROM tx JOIN ({cohort_sql}) f USING ({CUSTOMER})
            WHERE {DAY} > f.first_day GROUP BY {DAY} ORDER BY {DAY}""",
        cal,
    )
    first_days, repeat_days = cohorts["first_day"].to_numpy(), repeats[DAY].to_numpy()
    start = int(first_days.min())
    end = int(max(first_days.max(), repeat_days.max() if len(repeat_days) else start))
    days = np.arange(start, end + 1, max(1, round(days_per_unit)))
    done = np.searchsorted(repeat_days, days, side="right")
    actual = np.r_[0, np.cumsum(repeats["n"].to_numpy())][done]
    grid = pd.to_datetime(days, unit="D")
    ages = np.clip((days[:, None] - first_days[None, :]) / days_per_unit, 0, None)
    expected = model.expected_purchases_new(ages.ravel())
    predicted = (expected.reshape(ages.shape) * cohorts["n"].to_numpy()[None, :]).sum(axis=1)
    fig, ax = _figure()
    ax.plot(grid, actual, label="actual")
    ax.plot(grid, predicted, "--", label=f"{model.name} forecast")
    ax.axvline(calibration_end, color="grey", linestyle=":", label="calibration end")
    fig.autofmt_xdate()
    ax.set(
        xlabel="date",
        ylabel="cumulative repeat transactions",
        title="Tracking: actual vs predicted",
    )
    ax.legend()
    return fig


def rfm_matrix(
    model: PurchaseModel, quantity: str, max_frequency: int = 30, T: float | None = None
) -> Figure:
    """Expected purchases in the next time unit, or P(alive), over a frequency × recency grid."""
    T = float(T if T is not None else 52.0)
    freq = np.arange(0, max_frequency + 1)
    rec = np.linspace(0, T, 60)
    F, R = np.meshgrid(freq, rec, indexing="ij")
    R = np.where(F == 0, 0.0, R)
    args = (F.ravel().astype(float), R.ravel(), np.full(F.size, T))
    if quantity == "p_alive":
        values, title = model.p_alive(*args), "P(alive)"
    else:
        values, title = (
            model.expected_purchases(1.0, *args),
            f"Expected purchases in the next {model.time_unit}",
        )
    fig, ax = _figure()
    image = ax.imshow(
        values.reshape(F.shape),
        aspect="auto",
        origin="lower",
        extent=(0, T, 0, max_frequency),
        cmap="viridis",
    )
    fig.colorbar(image, ax=ax)
    ax.set(
        xlabel=f"recency ({model.time_unit}s, T = {T:.0f})",
        ylabel="frequency",
        title=f"{model.name}: {title}",
    )
    return fig


def value_deciles(deciles: list[dict[str, float]]) -> Figure:
    """Mean predicted vs mean actual holdout revenue per decile of predicted value."""
    frame = pd.DataFrame(deciles)
    fig, ax = _figure()
    width = 0.4
    ax.bar(frame["decile"] - width / 2, frame["mean_predicted"], width, label="predicted")
    ax.bar(frame["decile"] + width / 2, frame["mean_actual"], width, label="actual")
    ax.set(
        xlabel="decile of predicted value (1 = highest)",
        ylabel="mean holdout revenue",
        title="Value by decile",
    )
    ax.set_xticks(frame["decile"])
    ax.legend()
    return fig


def pit_histogram(section: dict[str, Any]) -> Figure:
    """The non-randomized PIT histogram of the holdout purchases (scorecard ``intervals``):
    flat at ``1 / bins`` when the predictive distributions are calibrated."""
    shares = np.asarray(section["pit"])
    edges = np.linspace(0.0, 1.0, shares.size + 1)
    fig, ax = _figure()
    ax.bar(edges[:-1], shares, width=np.diff(edges), align="edge", edgecolor="white")
    ax.axhline(1.0 / shares.size, color="grey", linestyle=":", label="calibrated")
    ax.set(
        xlabel="probability integral transform",
        ylabel="share of customers",
        title=f"Holdout purchases: PIT ({section['model']}, coverage of {section['level']:.0%} "
        f"intervals {section['coverage']:.1%})",
    )
    ax.legend()
    return fig


def roc_curves(labels: np.ndarray, scores: dict[str, np.ndarray]) -> Figure:
    """ROC curves of churn scores."""
    fig, ax = _figure(5.6, 5.0)
    for name, score in scores.items():
        counts = metrics.threshold_counts(labels, score)
        fpr, tpr = metrics.roc_points(counts)
        auc = metrics.roc_auc(labels, score, counts)
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="Churn: ROC")
    ax.legend(loc="lower right", fontsize="small")
    return fig


def reliability(curve: list[dict[str, float]]) -> Figure:
    """Observed churn rate vs mean predicted probability per bin."""
    frame = pd.DataFrame(curve)
    fig, ax = _figure(5.6, 5.0)
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect")
    ax.plot(frame["mean_predicted"], frame["observed_rate"], "o-", label="churn model")
    ax.set(
        xlabel="mean predicted probability",
        ylabel="observed churn rate",
        title="Churn: reliability",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend()
    return fig


def feature_importance(importance: dict[str, float], top: int = 20) -> Figure:
    """LightGBM gain importance of the churn classifier's features."""
    items = sorted(importance.items(), key=lambda kv: kv[1])[-top:]
    fig, ax = _figure(6.4, 0.3 * len(items) + 1.2)
    ax.barh([k for k, _ in items], [v for _, v in items])
    ax.set(xlabel="total gain", title="Churn classifier: feature importance")
    return fig


def save_evaluation_figures(
    evaluation: Any,
    transactions: pd.DataFrame | Compact,
    directory: Path,
    churn: Any = None,
    importance: bool = True,
) -> list[Path]:
    """Draw every diagnostic plot of an evaluation and save them as PNG files in ``directory``.

    ``churn`` is the churn model whose feature importance is drawn (default: the evaluated one);
    with ``importance=False`` that figure is left for :func:`save_importance_figure` (training
    draws the rest while the shipped classifier is still being trained).
    """
    from clv import units

    ev = evaluation
    chosen = ev.best_purchase_model
    model = ev.purchase_models[chosen]
    if isinstance(model, CovariateModel):  # drawn for the most common attribute combination
        model = model.most_common(ev.calibration)
    T = float(ev.calibration["T"].max())
    figures = {
        "calibration_vs_holdout.png": calibration_vs_holdout(
            ev.scorecard["conditional_expectations"], chosen
        ),
        "tracking_cumulative.png": cumulative_tracking(
            transactions, model, ev.split.calibration_end, units.days(1.0, model.time_unit)
        ),
        "frequency_recency_matrix.png": rfm_matrix(model, "expected", T=T),
        "p_alive_matrix.png": rfm_matrix(model, "p_alive", T=T),
    }
    if "intervals" in ev.scorecard:
        figures["pit_histogram.png"] = pit_histogram(ev.scorecard["intervals"])
    if "value_deciles" in ev.scorecard:
        figures["value_deciles.png"] = value_deciles(ev.scorecard["value_deciles"])
    if ev.churn_frame is not None:
        frame = ev.churn_frame
        figures["churn_roc.png"] = roc_curves(
            frame["churned"].to_numpy(),
            {
                "churn model": frame["churn_probability"].to_numpy(),
                "BG/NBD P(no purchase)": frame["p_no_purchase"].to_numpy(),
            },
        )
        figures["churn_reliability.png"] = reliability(ev.scorecard["churn_reliability"])
    paths = _save(figures, directory)
    if importance:
        paths += save_importance_figure(churn if churn is not None else ev.churn_model, directory)
    return paths


def save_importance_figure(churn: Any, directory: Path) -> list[Path]:
    """The churn classifier's feature importance (gain) as ``churn_feature_importance.png`` in
    ``directory``; nothing for no classifier or one without LightGBM."""
    if churn is None or not churn.validation.get("feature_importance_gain"):
        return []
    figure = feature_importance(churn.validation["feature_importance_gain"])
    return _save({"churn_feature_importance.png": figure}, directory)


def _save(figures: dict[str, Any], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures.items():
        paths.append(directory / name)
        fig.savefig(paths[-1])
    return paths
