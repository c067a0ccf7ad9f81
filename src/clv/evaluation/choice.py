"""The choice: the candidates on more than one holdout window (rolling origin), the stacked
mixture's cross-fitted weights, and the summary a reader sees."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from clv import metrics
from clv.config import Config
from clv.data.log import TransactionLog
from clv.errors import DataValidationError, ModelFitError
from clv.evaluation.candidates import Candidates, nested_start, smaller_first
from clv.evaluation.covariate_fits import covariate_effects
from clv.evaluation.scores import NAIVE, naive_rate
from clv.evaluation.split import CalibrationTable, Split, check_enough, needs_log_gaps
from clv.features import add_log_gaps, build_calibration_holdout
from clv.models.ensemble import EnsembleModel, combine
from clv.models.fitting import fit_purchase_model
from clv.models.registry import (
    ENSEMBLE,
    ENSEMBLE_MEMBERS,
    PURCHASE_MODELS,
    STACKED,
    WITH_COVARIATES,
    display_name,
)
from clv.origins import Window, earlier_split, fit_window, mean_loss, wins
from clv.stacking import fit_weights, holdout_densities, log_score, mixture
from clv.stages import StageLog


def holdout_windows(
    log: TransactionLog,
    config: Config,
    split: Split,
    cal: pd.DataFrame,
    candidates: list[str],
    models: dict[str, Any],
    predictions: dict[str, np.ndarray],
    report: StageLog,
    nested: dict[str, Any] | None = None,
) -> list[Window]:
    """The latest holdout window and, when there is a choice to make and the log is long
    enough, the one before it (the optional stage ``rolling_origin``). ``nested``: fits that
    left the choice to a larger model (:func:`~clv.evaluation.candidates.merge_nested`), fitted
    on the earlier window too when the ensemble needs them as members."""
    plain = {k: m for k, m in models.items() if k in PURCHASE_MODELS}
    members = {k: m for k, m in (nested or {}).items() if ENSEMBLE in models}
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
            log, config, split, {k: m.params for k, m in (plain | members).items()}, stacking
        ),
        "the candidates are chosen on the latest holdout alone",
    )
    if earlier is None:
        return [latest]
    if ENSEMBLE in models and all(k in earlier.models for k in ENSEMBLE_MEMBERS):
        ensemble = EnsembleModel(tuple(earlier.models[k] for k in ENSEMBLE_MEMBERS))
        earlier.predictions[ENSEMBLE] = ensemble.mean_of(earlier.models, earlier.predictions)
    for kind in members:  # members, not candidates
        earlier.models.pop(kind, None)
        earlier.predictions.pop(kind, None)
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

    def fit(kind: str, rfm: pd.DataFrame) -> Any:
        start = nested_start(kind, window.models) or starts[kind]
        return fit_purchase_model(
            kind, rfm, unit, settings.penalizer, settings.retry_penalizer, start=start
        )

    return fit_window(window, cal, smaller_first(kinds), fit, naive_rate, densities)


def stack_candidates(
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


def describe_windows(selection: dict[str, Any], metric: str) -> str:
    """One line on how the candidates fared across the holdout windows."""
    won = ", ".join(f"{display_name(k)} {n}" for k, n in selection["wins"].items() if n)
    ends = " and ".join(w["observation_end"] for w in selection["windows"])
    return (
        f"Judged on {len(selection['windows'])} holdout windows (ending {ends}) by their mean "
        f"{metric}; windows won: {won}"
    )


@dataclass
class Choice:
    """The holdout windows the candidates are judged on, and the stacked mixture's section of
    the scorecard (None when it is not a candidate or could not be formed)."""

    windows: list[Window]
    stacking: dict[str, Any] | None


def choose(
    log: TransactionLog,
    config: Config,
    split: Split,
    table: CalibrationTable,
    fits: Candidates,
    report: StageLog,
) -> Choice:
    """The naive baseline, the holdout windows (:func:`holdout_windows`) and the stacked
    candidate formed on them (:func:`stack_candidates`; dropped with its reason if it cannot
    be)."""
    x, _, T = table.history()
    predictions = fits.predictions
    predictions[NAIVE] = naive_rate(x, T, split.duration)
    windows = holdout_windows(
        log,
        config,
        split,
        table.frame,
        table.candidates,
        fits.models,
        predictions,
        report,
        fits.nested,
    )
    stacking = None
    if STACKED in table.candidates:
        try:
            stacking = stack_candidates(
                windows, table.frame, fits.models, predictions, config.train.seed
            )
        except ModelFitError as exc:
            fits.drop(STACKED, exc, report)
        else:
            predictions[NAIVE] = predictions.pop(NAIVE)  # the baseline after the candidates
            deviance = metrics.poisson_deviance(table.actual, predictions[STACKED])
            report(
                f"Formed {fits.models[STACKED].name} ({stacking['judged_on']}): holdout Poisson "
                f"deviance {deviance:.4f}"
            )
    return Choice(windows, stacking)


def selection_section(
    card: dict[str, Any],
    choice: Choice,
    fits: Candidates,
    ranked: metrics.Actual,
    config: Config,
    report: StageLog,
) -> None:
    """The scorecard's covariate effects (a candidate with covariates competes only with a
    significant holdout gain, unless ``require_gain`` is off), the windows, each candidate's
    mean loss and wins, the stacking weights, and the candidates dropped."""
    metric = config.train.selection_metric
    windows, models, predictions = choice.windows, fits.models, fits.predictions
    if config.covariates.on_purchase:
        card["covariates"] = covariate_effects(models, predictions, ranked, config, report)
        if config.covariates.require_gain:  # no significant gain: compared, not selectable
            for kind, fit in card["covariates"]["models"].items():
                if fit["converged"] and not fit["improved"]:
                    del models[kind + WITH_COVARIATES]
    windows[0].predictions.update(predictions)  # the covariate candidates, judged here alone
    card["selection"] = {
        "windows": [w.summary(metric) for w in windows],
        "mean_loss": {  # JSON has no infinity: undefined is null
            k: (v if np.isfinite(v) else None) for k, v in mean_loss(windows, metric).items()
        },
        "wins": wins(windows, metric, list(models)),
    }
    if STACKED in models:
        card["stacking"] = choice.stacking
    if len(windows) > 1:
        report(describe_windows(card["selection"], metric))
    if fits.dropped:
        card["dropped"] = fits.dropped
    if fits.same_as:
        card["same_as"] = fits.same_as
