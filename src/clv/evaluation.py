"""One scorecard: how well each model and baseline forecast a holdout (DOMAIN.md §3).

The protocol: split the log at the calibration cutoff c (:func:`choose_split`). Everything
fitted here sees only data up to c:

- purchases — each candidate BTYD model's expected purchases in (c, end] against the actual
  repeat transactions, next to the naive rate ``x / T × h``: mean Poisson deviance (the default
  selection criterion: proper for a predicted mean), RMSE, MAE, Spearman, aggregate % error;
  and the MAE of the all-zero forecast (``zero_forecast``), which MAE alone would reward;
- value — expected purchases × Gamma-Gamma expected spend against actual holdout revenue, next
  to the naive rate × the customer's mean spend: Spearman, normalized Gini, top-decile capture,
  MAE, and a decile table for the best purchase model;
- churn — "no purchase in (c, c + H]": the churn classifier trained on the window before c
  (:mod:`clv.churn`), its raw LightGBM score, and each BTYD model's P(no purchase) — BG/NBD's is
  the baseline: ROC AUC, PR AUC, Brier score, expected calibration error, reliability curve.
  When H is longer than the holdout, labels come from the holdout that exists (the scorecard
  says so in ``churn_note``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from clv import metrics, units
from clv.background import background
from clv.config import DEFAULT_INTERVAL, ONE_SIDED_Z_5PCT, Config
from clv.data.compact import CUSTOMER, day_number
from clv.data.log import TransactionLog
from clv.errors import DataValidationError, ModelFitError
from clv.features import add_log_gaps, build_calibration_holdout, regularity
from clv.models.ensemble import EnsembleModel, combine
from clv.models.fitted import PurchaseModel
from clv.models.fitting import churn_feature_model, fit_purchase_model
from clv.models.gamma_gamma import SpendModel, fit_spend_model
from clv.models.groups import (
    SCORE_ROWS,
    blocks,
    per_customer,
    plain_models,
    spend_per_transaction,
)
from clv.models.registry import (
    CHURN_FEATURE_MODELS,
    ENSEMBLE,
    ENSEMBLE_MEMBERS,
    MIXTURES,
    PURCHASE_MODELS,
    STACKED,
    WITH_COVARIATES,
    base_kind,
    display_name,
    purchase_process,
)
from clv.origins import Window, earlier_split, fit_window, mean_loss, wins
from clv.stacking import fit_weights, holdout_densities, log_score, mixture
from clv.stages import StageLog

if TYPE_CHECKING:
    from clv.churn import ChurnModel, ChurnTable

#: A trained churn model and its window's note (:func:`clv.churn.train_churn_window`).
ChurnResult = tuple["ChurnModel", str | None]

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


@dataclass(frozen=True)
class Split:
    """A calibration/holdout split of a log (days inclusive; duration in the time unit)."""

    calibration_end: pd.Timestamp
    observation_end: pd.Timestamp
    duration: float


def observation_end(log: TransactionLog, config: Config) -> pd.Timestamp:
    """The last day observed: ``train.as_of`` when set, else the log's last purchase day."""
    if config.train.as_of is not None:
        return pd.Timestamp(config.train.as_of)
    return pd.Timestamp(log.report.last_date)


def choose_split(log: TransactionLog, config: Config) -> Split:
    """Return the calibration/holdout split the config asks for, checked against the log.

    Raises
    ------
    DataValidationError
        When the calibration period or the holdout would be empty.
    """
    unit = config.features.time_unit
    first = pd.Timestamp(log.report.first_date)
    end = observation_end(log, config)
    if config.train.calibration_end is not None:
        cal_end = pd.Timestamp(config.train.calibration_end)
    else:
        cal_end = end - pd.Timedelta(days=units.whole_days(config.train.holdout, unit))
    span = units.in_units((end - first).days, unit)
    if not first <= cal_end < end:
        raise DataValidationError(
            f"The log spans {first.date()} .. {end.date()} ({span:.1f} {unit}s); a calibration "
            f"period ending {cal_end.date()} leaves no calibration or no holdout. Use a shorter "
            "--holdout or a --calibration-end inside the log."
        )
    return Split(cal_end, end, units.in_units((end - cal_end).days, unit))


#: The least a calibration period must hold for the purchase models: customers, and repeat
#: buyers (whose purchases are all a model learns the purchase rate and the dropout from).
MIN_CUSTOMERS, MIN_REPEAT_BUYERS = 100, 20


def check_enough(cal: pd.DataFrame, split: Split) -> None:
    """Raise when the calibration period is too small to fit a purchase model on.

    Raises
    ------
    DataValidationError
        Naming how many customers and repeat buyers it has and what is needed.
    """
    customers, repeat = len(cal), int((cal["frequency"] > 0).sum())
    if customers >= MIN_CUSTOMERS and repeat >= MIN_REPEAT_BUYERS:
        return
    raise DataValidationError(
        f"The calibration period (to {split.calibration_end.date()}) has {customers:,} "
        f"customers, {repeat:,} of them repeat buyers: too few to fit a purchase model on. clv "
        f"needs at least {MIN_CUSTOMERS} customers and {MIN_REPEAT_BUYERS} repeat buyers there "
        "(their repeat purchases are all a model learns the purchase rate and the dropout "
        "from). Give a longer log, or a shorter --holdout so that more of it is calibration."
    )


def churn_horizon(config: Config, split: Split) -> float:
    """The churn horizon H in the time unit: ``train.churn_horizon``, else the holdout length."""
    return float(config.train.churn_horizon or split.duration)


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


@dataclass
class Evaluation:
    """The scorecard and what was fitted to make it (all on data up to the cutoff)."""

    split: Split
    calibration: pd.DataFrame
    purchase_models: dict[str, PurchaseModel | EnsembleModel]
    spend_model: SpendModel | None
    churn_model: Any | None
    scorecard: dict[str, Any]
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    #: The evaluation window's customers (``customer_id``, sorted), their labels
    #: (``churned``), the shipped score (``churn_probability``) and the BG/NBD baseline's
    #: (``p_no_purchase``); None without a churn section.
    churn_frame: pd.DataFrame | None = None

    selection_metric: str = "poisson_deviance"
    log: TransactionLog | None = None

    def calibration_for(self, kind: str) -> pd.DataFrame:
        """The calibration table with what candidate ``kind`` reads: the times between
        purchases for a regularity model (e.g. a champion's, refitted on this split); the
        attributes of a model with covariates, which only a run with covariates has."""
        cal = self.calibration
        if needs_log_gaps([kind]) and "log_gap_sum" not in cal and self.log is not None:
            unit = self.scorecard["protocol"]["time_unit"]
            cal = add_log_gaps(cal, self.log.compact, self.split.calibration_end, unit)
        if kind.endswith(WITH_COVARIATES) and "covariates" not in self.scorecard:
            raise DataValidationError(
                f"{display_name(kind)} reads customer attributes, which this run did not: "
                "compare it on a run with the same covariates (and --customers)."
            )
        return cal

    @property
    def best_purchase_model(self) -> str:
        """The candidate with the lowest holdout ``selection_metric`` (a ``train`` setting)."""
        return best_model(self.scorecard, self.purchase_models, self.selection_metric)

    @property
    def ranked_purchase_models(self) -> list[str]:
        """The fitted candidates from the best holdout ``selection_metric`` to the worst."""
        best = self.best_purchase_model
        rest = [k for k in self.purchase_models if k != best]
        return [best, *sorted(rest, key=lambda k: _loss(self.scorecard, k, self.selection_metric))]


def _loss(card: dict[str, Any], kind: str, metric: str) -> float:
    """The candidate's ``metric`` averaged over the holdout windows (:mod:`clv.origins`), or
    on the one holdout of an older scorecard."""
    if "selection" in card and kind in card["selection"]["mean_loss"]:
        value = card["selection"]["mean_loss"][kind]
        return float("inf") if value is None else value
    value = card["purchases"][kind][metric]
    return float("inf") if value is None else value


def best_model(card: dict[str, Any], candidates: Any, metric: str) -> str:
    """The candidate with the lowest holdout purchase ``metric`` averaged over the holdout
    windows (an infinite one never wins)."""
    return min(candidates, key=lambda kind: _loss(card, kind, metric))


def evaluate(
    log: TransactionLog,
    config: Config,
    attributes: pd.DataFrame | None = None,
    surveys: pd.DataFrame | None = None,
    stages: StageLog | None = None,
    churn: Future[ChurnResult] | None = None,
    while_waiting: Callable[[], object] | None = None,
) -> Evaluation:
    """Fit every model on the calibration period and score the holdout (module docstring).

    Parameters
    ----------
    log : TransactionLog
        The cleaned log.
    config : Config
        Split, candidates, time unit, churn horizon, seeds.
    attributes : pandas.DataFrame, optional
        Customer attributes for the churn classifier (``customer_id`` + columns).
    surveys : pandas.DataFrame, optional
        Survey answers; their features join the churn classifier
        (:func:`clv.churn.survey_features`).
    stages : StageLog, optional
        Receives a line as each model is fitted and scored on the holdout, and runs the
        optional stages (Gamma-Gamma, interval calibration, the churn comparison: they degrade
        when they fail, :mod:`clv.stages`).
    churn : concurrent.futures.Future, optional
        The churn classifier of the window before the cutoff (:func:`churn_window` at the
        calibration cutoff), when the caller started it already; otherwise it is trained on a
        worker thread (:mod:`clv.background`) while the purchase models are fitted.
    while_waiting : callable, optional
        Called once, if that classifier is not ready when the scorecard needs it: work the
        caller gives the main line instead of waiting (:class:`clv.background.Handoff`).

    Returns
    -------
    Evaluation
    """
    if config.covariates.used and attributes is None:
        raise DataValidationError(
            f"covariates names customer attributes ({config.covariates.attributes}): give the "
            "customer list with --customers (train.customers)."
        )
    split = choose_split(log, config)
    if churn is not None:
        return _evaluate(log, config, split, attributes, surveys, stages, churn, while_waiting)
    with background() as jobs:
        cutoff, horizon = split.calibration_end, churn_horizon(config, split)
        churn = jobs.submit(
            churn_window, log, config, cutoff, horizon, attributes, surveys, jobs.stop
        )
        return _evaluate(log, config, split, attributes, surveys, stages, churn)


def churn_window(
    log: TransactionLog,
    config: Config,
    end: pd.Timestamp,
    horizon: float,
    attributes: pd.DataFrame | None = None,
    surveys: pd.DataFrame | None = None,
    stop: threading.Event | None = None,
) -> ChurnResult:
    """The config's churn classifier trained on the leak-free window that ends at ``end``
    (:func:`clv.churn.train_churn_window`; ``horizon`` in the time unit): the one the scorecard
    judges ends at the calibration cutoff, blind to the holdout; the one that ships
    (:mod:`clv.training`) at the log's end. :func:`churn_window_table` and
    :func:`fit_churn_window` are its two halves."""
    return fit_churn_window(
        churn_window_table(log, config, end, horizon, attributes, surveys, stop), config, stop
    )


def churn_window_table(
    log: TransactionLog,
    config: Config,
    end: pd.Timestamp,
    horizon: float,
    attributes: pd.DataFrame | None = None,
    surveys: pd.DataFrame | None = None,
    stop: threading.Event | None = None,
) -> ChurnTable:
    """The training table of :func:`churn_window` (:func:`clv.churn.window_table`)."""
    from clv.churn import window_table

    unit = config.features.time_unit
    return window_table(
        log.compact,
        end,
        units.whole_days(horizon, unit),
        unit,
        config.train.seed,
        config.train.churn_max_customers,
        attributes,
        surveys,
        stop,
    )


def fit_churn_window(
    table: ChurnTable, config: Config, stop: threading.Event | None = None
) -> ChurnResult:
    """The classifier of :func:`churn_window` from its training table, with the window's note
    (:func:`clv.churn.fit_churn_table`)."""
    from clv.churn import fit_churn_table

    return fit_churn_table(table, config.train.seed, config.churn, stop), table.note


def _evaluate(
    log: TransactionLog,
    config: Config,
    split: Split,
    attributes: pd.DataFrame | None,
    surveys: pd.DataFrame | None,
    stages: StageLog | None,
    churn: Future[ChurnResult],
    while_waiting: Callable[[], object] | None = None,
) -> Evaluation:
    unit, settings = config.features.time_unit, config.train
    cal = build_calibration_holdout(log.compact, split.calibration_end, split.observation_end, unit)
    timing = regularity(log.compact, split.calibration_end)
    candidates = with_regularity_model(settings.candidates, timing, settings.regularity_model)
    if needs_log_gaps(candidates):  # a regularity model reads the times between buys
        cal = add_log_gaps(cal, log.compact, split.calibration_end, unit)
    if config.covariates.used:  # the attributes the covariate candidates read
        cal = with_covariates(cal, attributes, config)
    check_enough(cal, split)
    x, t_x, T = (cal[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    actual = cal["frequency_holdout"].to_numpy(dtype=float)
    report = stages if stages is not None else StageLog()
    report(
        f"Split at {split.calibration_end.date()}: {len(cal):,} customers, holdout "
        f"{split.duration:g} {unit}s"
    )
    report(describe_regularity(timing, candidates, settings.candidates))
    models, predictions = {}, {}
    dropped: dict[str, str] = {}
    singles = [k for k in candidates if k not in MIXTURES]
    for kind in singles + [ENSEMBLE] * (ENSEMBLE in candidates):
        try:
            model = _fit_candidate(kind, cal, unit, settings, models, dropped)
        except ModelFitError as exc:  # degrade: the other candidates still compete
            dropped[kind] = str(exc)
            report(f"Dropped {display_name(kind)}: {exc}")
            continue
        models[kind] = model
        reused = model.mean_of(models, predictions) if isinstance(model, EnsembleModel) else None
        predictions[kind] = (
            reused if reused is not None else model.expected_purchases(split.duration, x, t_x, T)
        )
        report(
            f"Fitted {model.name} on the calibration period: holdout Poisson deviance "
            f"{metrics.poisson_deviance(actual, predictions[kind]):.4f}, RMSE "
            f"{metrics.rmse(actual, predictions[kind]):.4f}, MAE "
            f"{metrics.mae(actual, predictions[kind]):.4f}"
        )
    if config.covariates.on_purchase:
        for kind in covariate_kinds(models):
            name = kind + WITH_COVARIATES
            try:
                model = fit_purchase_model(
                    name,
                    cal,
                    unit,
                    settings.penalizer,
                    settings.retry_penalizer,
                    config.covariates.model_dump(),
                    plain_params=models[kind].params,  # fitted already: the start
                )
            except ModelFitError as exc:
                dropped[name] = str(exc)
                report(f"Dropped {display_name(name)}: {exc}")
                continue
            models[name] = model
            predictions[name] = per_customer(
                model,
                cal,
                lambda m, rows: m.expected_purchases(split.duration, x[rows], t_x[rows], T[rows]),
            )
    if not models:
        raise ModelFitError(
            "No candidate purchase model converged on the calibration period: "
            + " ".join(f"{display_name(k)}: {m}" for k, m in dropped.items())
        )
    predictions[NAIVE] = naive_rate(x, T, split.duration)
    windows = _windows(log, config, split, cal, candidates, models, predictions, report)
    if STACKED in candidates:
        try:
            stacking = _stack(windows, cal, models, predictions, settings.seed)
        except ModelFitError as exc:
            dropped[STACKED] = str(exc)
            report(f"Dropped {display_name(STACKED)}: {exc}")
        else:
            predictions[NAIVE] = predictions.pop(NAIVE)  # the baseline after the candidates
            report(
                f"Formed {models[STACKED].name} ({stacking['judged_on']}): holdout Poisson "
                f"deviance {metrics.poisson_deviance(actual, predictions[STACKED]):.4f}"
            )
    ranked = metrics.Actual(actual)  # ranked once for every forecast
    card: dict[str, Any] = {
        "protocol": {
            "calibration_end": str(split.calibration_end.date()),
            "observation_end": str(split.observation_end.date()),
            "holdout_length": split.duration,
            "time_unit": unit,
            "customers": len(cal),
        },
        "purchases": {k: purchase_metrics(ranked, p) for k, p in predictions.items()},
        # MAE rewards forecasting too little (the median of sparse counts is 0): this is the MAE
        # of forecasting no purchase for anyone, printed beside every model's
        "zero_forecast": purchase_metrics(ranked, np.zeros_like(actual)),
        "conditional_expectations": conditional_expectations(
            cal["frequency"].to_numpy(), actual, predictions
        ),
        "selection_metric": settings.selection_metric,
    }
    if config.covariates.on_purchase:
        card["covariates"] = covariate_effects(models, predictions, ranked, config, report)
        if config.covariates.require_gain:  # no significant gain: compared, not selectable
            for kind, fit in card["covariates"]["models"].items():
                if fit["converged"] and not fit["improved"]:
                    del models[kind + WITH_COVARIATES]
    windows[0].predictions.update(predictions)  # the covariate candidates, judged here alone
    card["selection"] = {
        "windows": [w.summary(settings.selection_metric) for w in windows],
        "mean_loss": {  # JSON has no infinity: undefined is null
            k: (v if np.isfinite(v) else None)
            for k, v in mean_loss(windows, settings.selection_metric).items()
        },
        "wins": wins(windows, settings.selection_metric, list(models)),
    }
    if STACKED in models:
        card["stacking"] = stacking
    if len(windows) > 1:
        report(_describe_windows(card["selection"], settings.selection_metric))
    if dropped:
        card["dropped"] = dropped
    card["regularity"] = {  # JSON has no NaN: unmeasured is null
        "k": timing["k"] if np.isfinite(timing["k"]) else None,
        "customers": timing["customers"],
    }
    spend = None
    if log.has_amounts:
        spend = report.optional(
            "gamma_gamma",
            lambda: fit_spend_model(cal, settings.penalizer, settings.retry_penalizer),
            "purchase and churn scores without value",
        )
    if spend is not None and config.covariates.spend:
        chosen = best_model(card, models, settings.selection_metric)
        plain = spend
        card["spend_covariates"], spend = report.optional(
            "spend_covariates",
            lambda: spend_covariate_effects(cal, plain, predictions[chosen], config, report),
            "the plain Gamma-Gamma competes alone",
            ({}, plain),
        )
    if spend is not None:
        revenue = cal["revenue_holdout"].to_numpy(dtype=float)
        value = spend_per_transaction(spend, cal)
        mean_spend = _mean_spend(log, cal, split)
        earned = metrics.Actual(revenue)
        card["value"] = {
            k: value_metrics(earned, p * value) for k, p in predictions.items() if k != NAIVE
        }
        card["value"][NAIVE] = value_metrics(earned, predictions[NAIVE] * mean_spend)
        best = best_model(card, models, settings.selection_metric)
        card["value_deciles"] = metrics.decile_table(revenue, predictions[best] * value).to_dict(
            "records"
        )
    if spend is not None:
        report(f"Fitted Gamma-Gamma on {spend.n_customers:,} repeat buyers")
    best = best_model(card, models, settings.selection_metric)
    level = config.score.interval or DEFAULT_INTERVAL
    intervals = report.optional(
        "interval_calibration",
        lambda: interval_calibration(models[best], spend, cal, split.duration, level),
        "the scorecard has no interval coverage (the bundle's intervals are unchanged)",
    )
    if intervals is not None:
        card["intervals"] = intervals | {"model": best}
        report(
            f"Scored {models[best].name}'s {intervals['level']:.0%} intervals on the holdout: "
            f"coverage {intervals['coverage']:.1%} (the model expects "
            f"{intervals['expected_coverage']:.1%})"
        )
    if while_waiting is not None and not churn.done():
        while_waiting()
    churn_model, churn_frame = report.optional(
        "churn_evaluation",
        lambda: _evaluate_churn(
            log, config, split, cal, models, card, churn.result, attributes, surveys
        ),
        "the scorecard has no churn comparison",
        (None, None),
    )
    if churn_model is not None:
        baseline = card["churn_protocol"]["baseline"]
        report(
            f"Trained and scored the churn model: holdout ROC AUC "
            f"{card['churn']['churn_model']['roc_auc']:.4f} "
            f"({label(baseline).removesuffix(' P(no purchase)')} baseline "
            f"{card['churn'][baseline]['roc_auc']:.4f})"
        )
    if report.skipped:  # JSON of the stages skipped so far (training adds its own)
        card["skipped"] = dict(report.skipped)
    return Evaluation(
        split,
        cal,
        models,
        spend,
        churn_model,
        card,
        predictions,
        churn_frame,
        settings.selection_metric,
        log,
    )


#: Calibration-frequency groups of the interval coverage table: (lowest, highest, label).
FREQUENCY_GROUPS = (
    (0, 0, "0"),
    (1, 1, "1"),
    (2, 2, "2"),
    (3, 5, "3–5"),
    (6, 10, "6–10"),
    (11, np.inf, "11+"),
)
#: Bins of the PIT histogram.
PIT_BINS = 10


def interval_calibration(
    model: PurchaseModel | EnsembleModel,
    spend: SpendModel | None,
    cal: pd.DataFrame,
    duration: float,
    level: float,
    size: int = SCORE_ROWS,
) -> dict[str, Any]:
    """How well the predictive distributions held on the holdout (the scorecard's
    ``intervals``), over blocks of at most ``size`` customers.

    - ``coverage``: the share of customers whose holdout purchases fell inside their ``level``
      interval, beside ``expected_coverage``, the model's own probability of that (whole counts
      make an interval hold more than ``level``: a calibrated model has coverage ≈ expected
      coverage), overall and ``by_frequency`` of calibration purchases;
    - ``log_score``: the mean negative log predictive probability of the actual count (a proper
      score of the whole distribution; lower is better);
    - ``pit``: the non-randomized PIT histogram for counts (Czado, Gneiting & Held 2009): the
      mass of each of :data:`PIT_BINS` equal bins, all ``1 / bins`` when calibrated; a U shape
      means intervals too narrow, a hump too wide;
    - ``totals``: the ranges of total holdout purchases and (with spend) revenue, including
      parameter uncertainty, with the actual totals and whether they fell inside.
    """
    from clv.intervals import add_ranges, forecast, purchase_distribution

    x, t_x, T = (cal[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    y = cal["frequency_holdout"].to_numpy(dtype=float)
    bounds = [
        *FREQUENCY_GROUPS,
        (FREQUENCY_GROUPS[-1][1] + 1, np.inf, f"{FREQUENCY_GROUPS[-1][1] + 1}+"),
    ]
    edges = np.linspace(0.0, 1.0, PIT_BINS + 1)
    # sums over customers, taken per distinct (x, t_x, T, y) of a block of customers weighted
    # by its count: no per-customer interval arrays and no customers × 11 PIT table (with
    # them this stage rose 1.3 GB at 5.5M customers). ``total`` is kept apart from the
    # frequency groups, which cover whole counts only
    members, covered, inside = (np.zeros(len(bounds)) for _ in range(3))
    total, log_loss, pit = np.zeros(2), 0.0, np.zeros(PIT_BINS)  # total: covered, inside
    forecasts = []
    for rows, plain, plain_spend in plain_models(model, spend, cal):  # one, or one per group
        for block in blocks(rows, size):
            keys = pd.DataFrame({"x": x[block], "t_x": t_x[block], "T": T[block], "y": y[block]})
            codes = keys.groupby(list(keys), sort=False).ngroup().to_numpy()
            first = ~pd.Series(codes).duplicated().to_numpy()
            unique = keys.to_numpy()[first]  # in the order of the codes (first appearance)
            weight = np.bincount(codes, minlength=len(unique)).astype(float)
            ux, uy = unique[:, 0], unique[:, 3]
            dist = purchase_distribution(plain, duration, *unique[:, :3].T, level, observed=uy)
            hit = ((uy >= dist.low) & (uy <= dist.high)).astype(float)
            total += np.stack([hit, dist.inside]) @ weight
            for g, (lowest, highest, _) in enumerate(bounds):
                w = np.where((ux >= lowest) & (ux <= highest), weight, 0.0)
                members[g] += w.sum()
                covered[g] += w @ hit
                inside[g] += w @ dist.inside
            with np.errstate(divide="ignore", invalid="ignore"):
                mass = np.where(dist.at > dist.below, dist.at - dist.below, 1.0)
                cdf = np.clip((edges[None, :] - dist.below[:, None]) / mass[:, None], 0.0, 1.0)
                log_loss -= float(weight @ np.log(np.maximum(dist.at - dist.below, 1e-300)))
            pit += weight @ np.diff(cdf, axis=1)
        forecasts.append(
            forecast(
                plain,
                plain_spend,
                duration,
                x[rows],
                t_x[rows],
                T[rows],
                monetary_value=cal["monetary_value"].to_numpy(dtype=float)[rows] if spend else None,
                level=level,
                customers=False,  # the totals' ranges only: no per-customer value intervals
            ).ranges
        )
    n = len(y)
    groups = [
        {
            "frequency": name,
            "customers": int(members[g]),
            "coverage": float(covered[g] / members[g]),
            "expected_coverage": float(inside[g] / members[g]),
        }
        for g, (_, _, name) in enumerate(bounds)
        if members[g]
    ]
    ranges = {name: add_ranges([f[name] for f in forecasts]) for name in forecasts[0]}
    totals = {}
    actuals = {"purchases": y.sum()}
    if spend is not None:
        actuals["clv"] = cal["revenue_holdout"].to_numpy(dtype=float).sum()
    for name, actual in actuals.items():
        interval = ranges[name].to_dict()
        totals["revenue" if name == "clv" else name] = interval | {
            "actual": float(actual),
            "inside": bool(interval["low"] <= actual <= interval["high"]),
        }
    return {
        "level": level,
        "coverage": float(total[0] / n) if n else float("nan"),
        "expected_coverage": float(total[1] / n) if n else float("nan"),
        "log_score": log_loss / n if n else float("nan"),
        "by_frequency": groups,
        "pit": (pit / n if n else np.full(PIT_BINS, np.nan)).tolist(),
        "totals": totals,
    }


def needs_log_gaps(kinds: Any) -> bool:
    """Whether any of these candidates reads the times between purchases (MBG/CNBD-k)."""
    return any(k not in MIXTURES and purchase_process(base_kind(k)).needs_log_gaps for k in kinds)


#: Above this Wheat-Morrison k, inter-purchase times are regular enough to say so.
REGULAR = 1.5


def with_regularity_model(candidates: list[str], timing: dict[str, Any], auto: bool) -> list[str]:
    """The candidates, with MBG/CNBD-k among them when purchase timing is regular (``auto``:
    ``train.regularity_model``) and it is not already: on Poisson-like timing its k is 1 and
    it is MBG/NBD, a fit that costs seconds for nothing; on simulated regular buyers it is the
    model that wins (``benchmarks/zoo.py``: 4–34 % lower holdout deviance on Erlang-2 to -5
    buyers), on the grocery log it is not (the setting's description).

    >>> with_regularity_model(["bgnbd"], {"k": 2.8, "customers": 500}, True)
    ['bgnbd', 'mbgcnbd']
    >>> with_regularity_model(["bgnbd"], {"k": 1.1, "customers": 500}, True)
    ['bgnbd']
    """
    k = timing["k"]
    if auto and "mbgcnbd" not in candidates and np.isfinite(k) and k >= REGULAR:
        mixtures = [c for c in candidates if c in MIXTURES]  # fitted after the models they mix
        return [c for c in candidates if c not in MIXTURES] + ["mbgcnbd", *mixtures]
    return list(candidates)


def describe_regularity(timing: dict[str, Any], candidates: Any, configured: Any = None) -> str:
    """One line on how regular purchase timing is (:func:`clv.features.regularity`) and what
    the candidates do about it (``configured``: ``train.candidates``, when they differ)."""
    k, customers = timing["k"], timing["customers"]
    if not customers or not np.isfinite(k):
        return "Purchase regularity: too few customers with 3+ purchases to measure it"
    head = (
        f"Purchase regularity (Wheat-Morrison, last two gaps of {customers:,} customers with "
        f"3+ purchases): k = {k:.2f}"
    )
    if k < REGULAR:
        return f"{head}, about as random as Poisson purchasing (k = 1)"
    if "mbgcnbd" not in candidates:
        advice = "add mbgcnbd (MBG/CNBD-k) to train.candidates, or set train.regularity_model"
    elif configured is not None and "mbgcnbd" not in configured:
        advice = "MBG/CNBD-k joins the candidates (train.regularity_model)"
    else:
        advice = "MBG/CNBD-k is among the candidates"
    return f"{head}: customers buy at regular intervals; {advice}"


#: The holdout deviance gain of covariates counts as an improvement above this paired z
#: (one-sided 5 %), as a promotion does.
COVARIATE_MIN_Z = ONE_SIDED_Z_5PCT


def with_covariates(cal: pd.DataFrame, attributes: pd.DataFrame, config: Config) -> pd.DataFrame:
    """The calibration table with the covariates' attribute columns (missing values stay
    missing: the fits say which customers lack one)."""
    names = config.covariates.attributes
    absent = [n for n in names if n not in attributes]
    if absent:
        raise DataValidationError(
            f"Covariate columns {absent} are not in the customer list (it has "
            f"{list(attributes.columns)}). Name columns of --customers under covariates."
        )
    return cal.merge(attributes[[CUSTOMER, *names]], on=CUSTOMER, how="left", validate="one_to_one")


def _effects(model: Any, plain: Any, gain: np.ndarray) -> tuple[dict[str, Any], float]:
    """What a model with covariates says against its plain fit: the effects with standard
    errors and p-values, the likelihood-ratio test, and whether the per-customer holdout loss
    ``gain`` (plain − with covariates) is significant (``improved``: paired z above the
    one-sided 5 % level); and that z."""
    from scipy.stats import chi2, norm

    spread = gain.std(ddof=1)
    gain_z = float(gain.mean() / (spread / np.sqrt(gain.size))) if spread > 0 else 0.0
    df = len(model.coefficients)
    lr = 2.0 * (model.log_likelihood - plain.log_likelihood)
    ses = model.standard_errors
    return {
        "converged": True,
        "coefficients": {
            c: {
                "estimate": value,
                "se": ses.get(c),
                "p_value": float(2 * norm.sf(abs(value / ses[c]))) if ses.get(c) else None,
            }
            for c, value in model.coefficients.items()
        },
        "log_likelihood": model.log_likelihood,
        "plain_log_likelihood": plain.log_likelihood,
        "lr_statistic": lr,
        "lr_df": df,
        "lr_p_value": float(chi2.sf(max(lr, 0.0), df)),
        "improved": bool(gain_z > COVARIATE_MIN_Z),
    }, gain_z


def spend_covariate_effects(
    cal: pd.DataFrame,
    plain: SpendModel,
    purchases: np.ndarray,
    config: Config,
    report: Callable[[str], None],
) -> tuple[dict[str, Any], Any]:
    """Gamma-Gamma refitted with the config's spend covariates against the plain fit (the
    scorecard's ``spend_covariates``), and the spend model to use: the one with covariates when
    it improved the holdout (or ``require_gain`` is off), else the plain one.

    The holdout check is the squared error of each customer's holdout revenue forecast
    (``purchases`` × expected spend per transaction: the chosen purchase model's, the same for
    both), paired; ``improved`` above the one-sided 5 % level.
    """

    from clv.models.spend_covariates import fit_configured

    settings = config.covariates
    try:
        model = fit_configured(
            cal, plain, settings.model_dump(), config.train.penalizer, config.train.retry_penalizer
        )
    except ModelFitError as exc:
        report(f"Gamma-Gamma with covariates did not converge; the plain model is used: {exc}")
        return {"converged": False, "message": str(exc)}, plain
    revenue = cal["revenue_holdout"].to_numpy(dtype=float)
    m = cal["monetary_value"].to_numpy(dtype=float)
    without = purchases * plain.expected_average_value(cal["frequency"].to_numpy(float), m)
    with_ = purchases * spend_per_transaction(model, cal)
    section, gain_z = _effects(model, plain, (revenue - without) ** 2 - (revenue - with_) ** 2)
    section |= {
        "revenue_rmse": float(np.sqrt(np.mean((revenue - with_) ** 2))),
        "plain_revenue_rmse": float(np.sqrt(np.mean((revenue - without) ** 2))),
        "revenue_gain_z": gain_z,
    }
    lr, df = section["lr_statistic"], section["lr_df"]
    used = section["improved"] or not settings.require_gain
    section["used"] = used
    report(
        f"Gamma-Gamma + covariates: likelihood-ratio {lr:.1f} on {df} df (p "
        f"{section['lr_p_value']:.2g}); holdout revenue RMSE {section['revenue_rmse']:.2f} "
        f"against {section['plain_revenue_rmse']:.2f} without (paired z {gain_z:.2f}: "
        f"{'improved' if section['improved'] else 'no significant gain'}; "
        f"{'used' if used else 'not used'})"
    )
    return section, model if used else plain


def covariate_kinds(models: dict[str, Any]) -> list[str]:
    """The fitted candidates that take covariates (single models with ``covariate_links``)."""
    return [
        k for k, m in models.items() if isinstance(m, PurchaseModel) and m.process.covariate_links
    ]


def covariate_effects(
    models: dict[str, Any],
    predictions: dict[str, np.ndarray],
    actual: metrics.Actual,
    config: Config,
    report: Callable[[str], None],
) -> dict[str, Any]:
    """Each candidate fitted with covariates against its plain fit (the scorecard's
    ``covariates``): the effects with standard errors and p-values, the likelihood-ratio test
    on the calibration period, and a paired test of the per-customer holdout Poisson deviance
    (``deviance_gain_z`` > 0: the covariates forecast better; ``improved`` above the one-sided
    5 % level)."""

    out: dict[str, Any] = {"models": {}}
    for kind in covariate_kinds(models):
        name = kind + WITH_COVARIATES
        if name not in models:
            out["models"][kind] = {"converged": False}
            continue
        model, plain = models[name], models[kind]
        design = model.design
        out |= {
            "columns": list(design.columns),
            "reference": {c.name: c.levels[0] for c in design.covariates if c.levels},
            "l2": dict(model.l2),
        }
        gain = metrics.unit_poisson_deviance(
            actual.values, predictions[kind]
        ) - metrics.unit_poisson_deviance(actual.values, predictions[name])
        fit, gain_z = _effects(model, plain, gain)
        fit |= {"holdout": purchase_metrics(actual, predictions[name]), "deviance_gain_z": gain_z}
        lr, df = fit["lr_statistic"], fit["lr_df"]
        out["models"][kind] = fit
        report(
            f"{model.name}: likelihood-ratio {lr:.1f} on {df} df (p {fit['lr_p_value']:.2g}); "
            f"holdout Poisson deviance {fit['holdout']['poisson_deviance']:.4f} against "
            f"{gain.mean() + fit['holdout']['poisson_deviance']:.4f} without (paired z "
            f"{gain_z:.2f}: {'improved' if fit['improved'] else 'no significant gain'})"
        )
    return out


def _windows(
    log: TransactionLog,
    config: Config,
    split: Split,
    cal: pd.DataFrame,
    candidates: list[str],
    models: dict[str, Any],
    predictions: dict[str, np.ndarray],
    report: StageLog,
) -> list[Window]:
    """The latest holdout window and, when there is a choice to make and the log is long
    enough, the one before it (the optional stage ``rolling_origin``)."""
    plain = {k: m for k, m in models.items() if k in PURCHASE_MODELS}
    latest = Window(
        split.calibration_end,
        split.observation_end,
        split.duration,
        cal["frequency_holdout"].to_numpy(dtype=float),
        models=dict(plain),
        predictions={k: predictions[k] for k in [*plain, NAIVE]},
    )
    if len(candidates) < 2 or not config.train.rolling_origin:  # nothing to choose between
        return [latest]
    stacking = STACKED in candidates
    earlier = report.optional(
        "rolling_origin",
        lambda: _earlier_window(
            log, config, split, {k: m.params for k, m in plain.items()}, stacking
        ),
        "the candidates are chosen on the latest holdout alone",
    )
    if earlier is None:
        return [latest]
    if ENSEMBLE in models and all(k in earlier.models for k in ENSEMBLE_MEMBERS):
        ensemble = EnsembleModel(tuple(earlier.models[k] for k in ENSEMBLE_MEMBERS))
        earlier.predictions[ENSEMBLE] = ensemble.mean_of(earlier.models, earlier.predictions)
    return [latest, earlier]


def _earlier_window(
    log: TransactionLog,
    config: Config,
    split: Split,
    starts: dict[str, dict[str, float]],
    densities: bool,
) -> Window:
    """The plain candidates fitted on the log to two holdouts before its end and scored on
    the holdout before the latest (:mod:`clv.origins`), each from its fit on the latest window
    (``starts``). The periods overlap, so the optimum is near: on a log of equal buyers
    Pareto/NBD's ridge took 58 s from the default start and 8 s from there."""
    kinds = list(starts)
    unit, settings = config.features.time_unit, config.train
    days = (split.observation_end - split.calibration_end).days
    dates = earlier_split(split.calibration_end, days, pd.Timestamp(log.report.first_date))
    if dates is None:
        raise DataValidationError(
            f"the log is too short for a second holdout window of {split.duration:g} {unit}s "
            f"before {split.calibration_end.date()}"
        )
    earlier = Split(*dates, split.duration)
    cal = build_calibration_holdout(log.compact, *dates, unit)
    if needs_log_gaps(kinds):
        cal = add_log_gaps(cal, log.compact, earlier.calibration_end, unit)
    check_enough(cal, earlier)
    window = Window(
        earlier.calibration_end,
        earlier.observation_end,
        earlier.duration,
        cal["frequency_holdout"].to_numpy(dtype=float),
    )
    return fit_window(
        window,
        cal,
        kinds,
        lambda kind, rfm: fit_purchase_model(
            kind, rfm, unit, settings.penalizer, settings.retry_penalizer, start=starts[kind]
        ),
        naive_rate,
        densities,
    )


def _stack(
    windows: list[Window],
    cal: pd.DataFrame,
    models: dict[str, Any],
    predictions: dict[str, np.ndarray],
    seed: int,
) -> dict[str, Any]:
    """Form the ``stacked`` candidate from the plain candidates (:mod:`clv.stacking`) and
    return its scorecard section.

    Its holdout scores are cross-fitted, never in-sample: with two holdout windows each is
    scored with weights fitted on the other; with one, its customers are split in two halves
    (seeded) and each half scored with weights fitted on the other. The shipped mixture's
    weights are fitted on all of them.
    """
    latest = windows[0]
    kinds = [k for k in latest.models if all(k in w.models for w in windows)]
    members = {k: latest.models[k] for k in kinds}
    if len(windows) > 1:
        fold = np.zeros(len(cal), dtype=int)
        parts = [holdout_densities(members, latest.duration, cal)]
        parts += [w.densities for w in windows[1:]]
    else:
        fold = np.random.default_rng(seed).integers(0, 2, len(cal))
        parts = [holdout_densities(members, latest.duration, cal[fold == f]) for f in (0, 1)]
    kinds = [k for k in kinds if all(np.all(np.isfinite(p.values[k])) for p in parts)]
    if len(kinds) < 2:
        raise ModelFitError(
            "stacking needs at least two models with finite holdout probabilities on every "
            f"holdout window; {', '.join(map(display_name, kinds)) or 'none'} had them."
        )
    weights = fit_weights(parts, kinds)
    crossed = [fit_weights([p for j, p in enumerate(parts) if j != i], kinds) for i in range(2)]
    # each customer of the latest window forecast with the weights of the other part
    stacked = mix(predictions, kinds, np.array(crossed)[fold].T)
    for window, own in zip(windows[1:], crossed[1:], strict=False):
        window.predictions[STACKED] = mix(window.predictions, kinds, own)
    latest.predictions[STACKED] = predictions[STACKED] = stacked
    models[STACKED] = mixture(members, weights)
    scored = parts[:1] if len(windows) > 1 else parts  # the latest window's customers
    equal = np.full(len(kinds), 1 / len(kinds))
    return {
        "weights": dict(zip(kinds, weights.tolist(), strict=True)),
        "judged_on": (
            "cross-fitted: each holdout window scored with weights fitted on the other"
            if len(windows) > 1
            else "cross-fitted: each half of the customers scored with weights fitted on the "
            "other half"
        ),
        "fold_weights": [dict(zip(kinds, w.tolist(), strict=True)) for w in crossed],
        "log_score": {
            **{k: log_score(scored, [k], [np.ones(1)] * len(scored)) for k in kinds},
            STACKED: log_score(scored, kinds, crossed[: len(scored)]),
            "equal_weights": log_score(scored, kinds, [equal] * len(scored)),
        },
    }


def mix(predictions: dict[str, np.ndarray], kinds: Any, weights: np.ndarray) -> np.ndarray:
    """``Σ_m weights[m] · predictions[kinds[m]]`` (``weights`` per model, or models ×
    customers).

    >>> forecasts = {"a": np.array([1.0, 2.0]), "b": np.array([3.0, 4.0])}
    >>> mix(forecasts, ["a", "b"], np.array([0.5, 0.5]))
    array([2., 3.])
    """
    weights = np.asarray(weights, dtype=float)
    if weights.ndim == 1:
        return combine([predictions[k] for k in kinds], tuple(weights))
    return np.sum(weights * np.array([predictions[k] for k in kinds]), axis=0)


def _describe_windows(selection: dict[str, Any], metric: str) -> str:
    """One line on how the candidates fared across the holdout windows."""
    won = ", ".join(f"{display_name(k)} {n}" for k, n in selection["wins"].items() if n)
    ends = " and ".join(w["observation_end"] for w in selection["windows"])
    return (
        f"Judged on {len(selection['windows'])} holdout windows (ending {ends}) by their mean "
        f"{metric}; windows won: {won}"
    )


def _fit_candidate(
    kind: str,
    cal: pd.DataFrame,
    unit: str,
    settings: Any,
    fitted: dict[str, PurchaseModel | EnsembleModel],
    dropped: dict[str, str],
) -> PurchaseModel | EnsembleModel:
    """Fit one candidate on the calibration period; the ensemble reuses its members' fits and
    cannot be formed when one of them was dropped."""
    if kind != ENSEMBLE:
        return fit_purchase_model(kind, cal, unit, settings.penalizer, settings.retry_penalizer)
    missing = [k for k in ENSEMBLE_MEMBERS if k in dropped]
    if missing:
        raise ModelFitError(
            "the equal-weight mixture needs all of "
            f"{', '.join(map(display_name, ENSEMBLE_MEMBERS))}; "
            f"{', '.join(map(display_name, missing))} did not converge."
        )
    return EnsembleModel(
        tuple(
            fitted.get(k)
            or fit_purchase_model(k, cal, unit, settings.penalizer, settings.retry_penalizer)
            for k in ENSEMBLE_MEMBERS
        )
    )


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


def _mean_spend(log: TransactionLog, cal: pd.DataFrame, split: Split) -> np.ndarray:
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


def _evaluate_churn(
    log: TransactionLog,
    config: Config,
    split: Split,
    cal: pd.DataFrame,
    models: dict[str, PurchaseModel],
    card: dict[str, Any],
    trained: Callable[[], ChurnResult],
    attributes: pd.DataFrame | None,
    surveys: pd.DataFrame | None,
) -> tuple[Any, pd.DataFrame | None]:
    """The scorecard's churn section. ``trained()`` gives the classifier (waiting for the worker
    that trains it). The features are built, and every score taken, for blocks of about
    :data:`clv.models.groups.SCORE_ROWS` customers (:func:`clv.churn.scores_by_block`): the
    scores of every customer are held, not their features (a gigabyte at 5.5M customers)."""
    from clv.churn import churn_labels, scores_by_block

    unit = config.features.time_unit
    H = churn_horizon(config, split)
    days = units.whole_days(H, unit)
    c = split.calibration_end
    label_end = min(c + pd.Timedelta(days=days), split.observation_end)
    if split.duration + 1e-9 < H:
        card["churn_note"] = (
            f"churn horizon {H:g} {unit}s is longer than the holdout ({split.duration:g} "
            f"{unit}s): evaluation labels cover ({c.date()}, {label_end.date()}] only"
        )
    bgnbd = models.get(CHURN_FEATURE_MODELS[0]) or churn_feature_model(cal, unit)[0]
    model, note = trained()
    if note:
        card["churn_note"] = "; ".join(filter(None, [card.get("churn_note"), note]))
    model = replace(model, btyd=bgnbd)
    baseline = f"{bgnbd.kind}_p_no_purchase"  # BG/NBD's, or its stand-in's when it failed
    candidates = {bgnbd.kind: bgnbd, **models}
    customers, scores = scores_by_block(
        log.compact,
        c,
        unit,
        bgnbd,
        H,
        lambda frame: (
            _churn_scores(frame, model, candidates, H)
            | {"p_no_purchase": frame["p_no_purchase"].to_numpy()}
        ),
        SCORE_ROWS,
        attributes,
        surveys,
    )
    feature = scores.pop("p_no_purchase")  # the classifier's BG/NBD feature, kept, not scored
    labels = churn_labels(log.compact, customers, c, label_end)
    card["churn"] = {k: churn_metrics(labels, s) for k, s in scores.items()}
    card["churn_protocol"] = {
        "horizon": H,
        "training_window": model.window,
        "evaluation_window": {
            "feature_cutoff": str(c.date()),
            "label_end": str(label_end.date()),
            "churn_rate": float(labels.mean()),
        },
        "decision": model.validation.get("decision"),
        "baseline": baseline,
    }
    card["churn_reliability"] = metrics.reliability_curve(labels, scores["churn_model"]).to_dict(
        "records"
    )
    # what the figures and a promotion read (a promotion builds the features again for the
    # champion's classifier: clv.promotion)
    kept = pd.DataFrame(
        {
            CUSTOMER: customers,
            "churned": labels,
            "churn_probability": scores["churn_model"],
            "p_no_purchase": feature,
        }
    )
    return model, kept


def _churn_scores(
    frame: pd.DataFrame, model: Any, candidates: dict[str, Any], H: float
) -> dict[str, np.ndarray]:
    """The scorecard's churn scores of a block of customers' features: the classifier's
    (``churn_model``, and ``lightgbm`` alone when it has a booster) and every candidate's
    P(no purchase) over ``H`` (an ensemble's as the mean of its members' already computed)."""
    x, t_x, T = (frame[k].to_numpy(dtype=float) for k in ("frequency", "recency", "T"))
    scores = {"churn_model": model.predict_proba(frame)}
    if model.booster_text is not None:
        scores["lightgbm"] = replace(model, blend_weight=1.0).raw_score(frame)
    no_purchase: dict[str, np.ndarray] = {}
    for kind, m in candidates.items():
        reused = m.mean_of(candidates, no_purchase) if isinstance(m, EnsembleModel) else None
        no_purchase[kind] = (
            reused
            if reused is not None
            else per_customer(
                m, frame, lambda plain, rows: plain.p_no_purchase(H, x[rows], t_x[rows], T[rows])
            )
        )
    return scores | {f"{kind}_p_no_purchase": p for kind, p in no_purchase.items()}
