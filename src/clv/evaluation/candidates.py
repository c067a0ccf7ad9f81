"""The candidate fits: every purchase model on the calibration period, with its holdout
forecast; one that does not converge is dropped with its reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from clv import metrics
from clv.config import Config
from clv.errors import ModelFitError
from clv.evaluation.split import CalibrationTable, Split
from clv.models.ensemble import EnsembleModel
from clv.models.fitted import PurchaseModel
from clv.models.fitting import fit_purchase_model
from clv.models.optimize import flat
from clv.models.registry import ENSEMBLE, ENSEMBLE_MEMBERS, MIXTURES, NESTED_IN, display_name
from clv.stages import StageLog


@dataclass
class Candidates:
    """The fitted candidates, their holdout forecasts (expected purchases per customer, in
    the order they were fitted, the baselines after them) and the ones dropped, with why."""

    models: dict[str, PurchaseModel | EnsembleModel] = field(default_factory=dict)
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    #: nested candidate → the larger model whose fit it equals (:func:`merge_nested`)
    same_as: dict[str, str] = field(default_factory=dict)
    #: the nested candidates' fits, kept for the ensemble (its members on every window)
    nested: dict[str, PurchaseModel] = field(default_factory=dict)

    def drop(self, kind: str, exc: Exception, report: StageLog) -> None:
        """Record a candidate that did not converge, and say so: the others still compete."""
        self.dropped[kind] = str(exc)
        report(f"Dropped {display_name(kind)}: {exc}")

    def require_one(self) -> None:
        """End the run when no candidate converged: nothing to forecast with."""
        if not self.models:
            raise ModelFitError(
                "No candidate purchase model converged on the calibration period: "
                + " ".join(f"{display_name(k)}: {m}" for k, m in self.dropped.items())
            )


def fit_candidates(
    table: CalibrationTable, split: Split, config: Config, report: StageLog
) -> Candidates:
    """Every single candidate, then the equal-weight ensemble of its members, fitted on the
    calibration period, each with its holdout forecast and a stage line of its scores."""
    unit, settings = config.features.time_unit, config.train
    x, t_x, T = table.history()
    actual = table.actual
    fits = Candidates()
    models, predictions = fits.models, fits.predictions
    singles = [k for k in table.candidates if k not in MIXTURES]
    singles = smaller_first(singles)
    for kind in singles + [ENSEMBLE] * (ENSEMBLE in table.candidates):
        try:
            model = fit_candidate(kind, table.frame, unit, settings, models, fits.dropped)
        except ModelFitError as exc:  # degrade: the other candidates still compete
            fits.drop(kind, exc, report)
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
    merge_nested(fits, report)
    return fits


def merge_nested(fits: Candidates, report: StageLog) -> None:
    """Two candidates nested in each other (:data:`~clv.models.registry.NESTED_IN`: GG/NBD at
    its Pareto/NBD limit, MBG/CNBD-k at k = 1) whose fits are the same (log-likelihoods within
    :func:`~clv.models.optimize.flat`) are one forecast, and one of them leaves the choice to the
    other. The larger model stays: refitted on the whole log, it can still leave the limit
    there. When the smaller one's fit is itself at an edge of its space (no dropout, or a
    mixing distribution run to a point mass), the smaller stays: that edge is shipped at a
    bounded, named point, where the larger model's fit runs on (MBG/CNBD-k's r into the
    millions on a log of equal buyers). The one that leaves keeps its fit in
    :attr:`Candidates.nested`, a member of the ensemble."""
    for kind, larger in NESTED_IN.items():
        small, large = fits.models.get(kind), fits.models.get(larger)
        if not isinstance(small, PurchaseModel) or not isinstance(large, PurchaseModel):
            continue
        if large.params.get("k", 1.0) != 1.0:  # MBG/CNBD-k with regular gaps: another model
            continue
        if not abs(large.log_likelihood - small.log_likelihood) <= flat(small.log_likelihood):
            continue
        stays, leaves = (kind, larger) if small.at_edge else (larger, kind)
        fits.nested[leaves] = fits.models.pop(leaves)
        fits.predictions.pop(leaves)
        fits.same_as[leaves] = stays
        report(
            f"{display_name(larger)}'s fit is {display_name(kind)}'s here (the same "
            f"log-likelihood, at its limit): {display_name(stays)} competes for both"
        )


def smaller_first(kinds: list[str]) -> list[str]:
    """``kinds`` with the larger of two nested models after the rest, so that it can start
    from the smaller one's fit (:func:`nested_start`).

    >>> smaller_first(["ggomnbd", "bgnbd", "pareto"])
    ['bgnbd', 'pareto', 'ggomnbd']
    """
    return sorted(kinds, key=lambda k: k in NESTED_IN.values())


#: The larger nested models whose fit refits the smaller one first (GG/NBD through its
#: Pareto/NBD limit): the smaller one's fit starts that inner fit, at an edge too.
THROUGH_THE_LIMIT = ("ggomnbd",)


def nested_start(kind: str, fitted: dict[str, Any]) -> dict[str, float] | None:
    """The start of the larger of two nested models: the smaller one's fit among ``fitted``
    (its limit). A fit at an edge of its space starts only a model that refits the smaller
    one first (:data:`THROUGH_THE_LIMIT`): from MBG/NBD's capped homogeneous-dropout point,
    MBG/CNBD-k's k = 3 fit of 20,000 regular buyers ended at a worse optimum than from the
    default start, and lost the choice it wins from there; from Pareto/NBD's
    homogeneous-dropout point on CDNOW's first quarter, GG/NBD's inner Pareto/NBD fit stops at
    once instead of crawling 80 steps, and its climb finds b = 0.07/week, 1.8 log-likelihood
    units above what the default start reached (10 s instead of 15 s)."""
    smaller = next((k for k, v in NESTED_IN.items() if v == kind and k in fitted), None)
    model = fitted.get(smaller)
    if not isinstance(model, PurchaseModel) or model.limit_of:
        return None
    if model.at_edge and kind not in THROUGH_THE_LIMIT:
        return None
    return model.params


def fit_candidate(
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
        start = nested_start(kind, fitted)
        return fit_purchase_model(
            kind, cal, unit, settings.penalizer, settings.retry_penalizer, start=start
        )
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
