"""Rolling origin: the candidates judged on more than one holdout window.

One holdout is one draw of the future: on a real log the model that wins the last ``h`` weeks
is often not the one that wins the ``h`` weeks before, and a choice that rests on one window
follows its noise. The evaluation therefore also fits every plain candidate on the log up to
``2h`` before its end and scores it on the ``h`` after that (:func:`earlier_split`,
:func:`fit_window`), and :func:`mean_loss` ranks each candidate by its loss averaged over the
windows (one missing from a window is compared through the others). Each window's winner is
reported (:func:`wins`): a candidate that wins one window and loses the other is a coin toss,
and the scorecard says so. The model shipped is still refitted on the whole log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from clv import metrics
from clv.errors import ModelFitError
from clv.stacking import Densities, holdout_densities

#: Name of the naive forecast (the customer's past rate) in every window.
NAIVE = "naive"


@dataclass
class Window:
    """The candidates fitted on one calibration period and scored on the holdout after it.

    Attributes
    ----------
    calibration_end, observation_end : pandas.Timestamp
        The window's split.
    duration : float
        Holdout length in the time unit.
    actual : numpy.ndarray
        Each customer's holdout purchases.
    models : dict
        Candidate → its fit on the window's calibration period.
    predictions : dict
        Candidate (and ``naive``) → expected holdout purchases per customer.
    densities : Densities or None
        The single candidates' holdout densities (for stacking), when computed.
    dropped : dict
        Candidate → why it did not converge on this window.
    """

    calibration_end: pd.Timestamp
    observation_end: pd.Timestamp
    duration: float
    actual: np.ndarray
    models: dict[str, Any] = field(default_factory=dict)
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    densities: Densities | None = None
    dropped: dict[str, str] = field(default_factory=dict)
    _losses: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)

    def losses(self, metric: str) -> dict[str, float]:
        """Holdout ``metric`` of every forecast of the window (infinite where undefined),
        each computed once (a 1M-customer window's metrics are not free)."""
        cached = self._losses.setdefault(metric, {})
        for kind in self.predictions.keys() - cached.keys():
            cached[kind] = self._loss(metric, kind)
        return {kind: cached[kind] for kind in self.predictions}

    def _loss(self, metric: str, kind: str) -> float:
        score = {
            "poisson_deviance": metrics.poisson_deviance,
            "rmse": metrics.rmse,
            "mae": metrics.mae,
        }[metric]
        value = score(self.actual, self.predictions[kind])
        return float(value) if np.isfinite(value) else float("inf")

    def summary(self, metric: str) -> dict[str, Any]:
        """The window for the scorecard: its dates, customers, each forecast's ``metric`` and
        its best candidate."""
        losses = self.losses(metric)
        candidates = {k: v for k, v in losses.items() if k != NAIVE}
        return {
            "calibration_end": str(self.calibration_end.date()),
            "observation_end": str(self.observation_end.date()),
            "customers": len(self.actual),
            metric: {k: (v if np.isfinite(v) else None) for k, v in losses.items()},
            "best": min(candidates, key=candidates.__getitem__) if candidates else None,
        }


def earlier_split(
    calibration_end: pd.Timestamp, duration_days: int, first: pd.Timestamp
) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The window before the latest: calibration to ``duration_days`` before the latest
    calibration end, holdout up to it. None when that leaves no calibration period."""
    end = calibration_end - pd.Timedelta(days=duration_days)
    return (end, calibration_end) if end > first else None


def fit_window(
    window: Window,
    cal: pd.DataFrame,
    kinds: Sequence[str],
    fit: Callable[[str, pd.DataFrame], Any],
    naive: Callable[[np.ndarray, np.ndarray, float], np.ndarray],
    densities: bool = False,
) -> Window:
    """Fit each of ``kinds`` on ``cal`` with ``fit(kind, cal)`` and forecast the window's
    holdout (and, with ``densities``, each fit's holdout densities for stacking); a candidate
    that does not converge is recorded in ``window.dropped``."""
    x, t_x, T = (cal[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    for kind in kinds:
        try:
            model = fit(kind, cal)
        except ModelFitError as exc:
            window.dropped[kind] = str(exc)
            continue
        window.models[kind] = model
        window.predictions[kind] = model.expected_purchases(window.duration, x, t_x, T)
    window.predictions[NAIVE] = naive(x, T, window.duration)
    if densities:
        window.densities = holdout_densities(window.models, window.duration, cal)
    return window


def mean_loss(windows: Sequence[Window], metric: str) -> dict[str, float]:
    """Each candidate's ``metric`` averaged over the holdout windows (lower is better).

    A candidate scored on every window gets its plain mean. One missing from a window (a
    covariate candidate, fitted on the latest window only; a model that did not converge on
    one) is put on the same footing through each window's *reference*, the mean loss of the
    candidates with a finite loss on every window: its mean over its own windows of
    ``loss − reference``, plus the references' mean over all windows. A window's level then
    cancels, so a busy season does not count for or against the candidates it saw.

    >>> w = Window(pd.Timestamp("2024-01-01"), pd.Timestamp("2024-02-01"), 4.0,
    ...            np.array([0.0, 2.0]), predictions={"a": np.array([0.0, 2.0]),
    ...            "b": np.array([1.0, 1.0]), "naive": np.array([1.0, 1.0])})
    >>> mean_loss([w], "rmse")
    {'a': 0.0, 'b': 1.0}
    """
    losses = [{k: v for k, v in window.losses(metric).items() if k != NAIVE} for window in windows]
    kinds = list(dict.fromkeys(k for window in losses for k in window))
    common = [k for k in kinds if all(np.isfinite(w.get(k, np.inf)) for w in losses)]
    reference = [float(np.mean([w[k] for k in common])) if common else 0.0 for w in losses]
    level = float(np.mean(reference))
    pairs = list(zip(losses, reference, strict=True))
    return {
        kind: level + float(np.mean([w[kind] - r for w, r in pairs if kind in w])) for kind in kinds
    }


def wins(windows: Sequence[Window], metric: str, kinds: Sequence[str]) -> dict[str, int]:
    """How many windows each of ``kinds`` won (lowest ``metric`` among those scored on every
    window)."""
    common = [k for k in kinds if all(k in w.predictions for w in windows)]
    counts = dict.fromkeys(common, 0)
    for window in windows:
        losses = window.losses(metric)
        if common:
            counts[min(common, key=losses.__getitem__)] += 1
    return counts
