"""Ranges of business totals: the customers' process variance plus the parameters'
uncertainty by the delta method, by customer or by history pattern."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtri

from clv.intervals.purchases import purchase_moments, quantile_levels
from clv.intervals.value import SpendTerms, delta_sd, spend_terms
from clv.models.groups import SCORE_ROWS, blocks
from clv.models.optimize import central_gradient


@dataclass(frozen=True)
class Range:
    """A business total with its interval.

    Attributes
    ----------
    estimate : float
        The point forecast (the sum of the customers' expectations).
    low, high : float
        The ``level`` interval (normal; ``low`` never below 0).
    level : float
    process_sd : float
        Standard deviation from the customers' own randomness, parameters fixed.
    parameter_sd : float
        Standard deviation from the parameters' uncertainty (delta method); NaN when the
        model carries no covariance (a bundle of an older clv), then left out of the range.
    """

    estimate: float
    low: float
    high: float
    level: float
    process_sd: float
    parameter_sd: float

    def to_dict(self) -> dict[str, float]:
        """JSON-ready values."""
        return {k: float(v) for k, v in self.__dict__.items()}


def make_range(estimate: float, process_var: float, parameter_sd: float, level: float) -> Range:
    """A normal ``level`` range around ``estimate`` from both sources of variance."""
    _, q_high = quantile_levels(level)
    parameter_var = parameter_sd**2 if np.isfinite(parameter_sd) else 0.0
    half = float(ndtri(q_high)) * float(np.sqrt(process_var + parameter_var))
    return Range(
        estimate=float(estimate),
        low=max(float(estimate) - half, 0.0),
        high=float(estimate) + half,
        level=level,
        process_sd=float(np.sqrt(process_var)),
        parameter_sd=float(parameter_sd),
    )


def add_ranges(ranges: list[Range]) -> Range:
    """The range of a sum of totals from separately scored groups of customers (e.g. by
    covariate vector): estimates and the customers' variances add; the parameters' standard
    deviations add as if perfectly correlated (the groups share the fitted parameters), an
    upper bound, as for the ensemble's members."""
    if len(ranges) == 1:
        return ranges[0]
    parameter = [r.parameter_sd for r in ranges]
    return make_range(
        sum(r.estimate for r in ranges),
        sum(r.process_sd**2 for r in ranges),
        sum(parameter) if all(np.isfinite(parameter)) else float("nan"),
        ranges[0].level,
    )


@dataclass(frozen=True)
class PatternSpend:
    """Spend terms summed over the customers of each ``(x, t_x, T)`` pattern: all that the value
    total of an undiscounted forecast needs of the customers, the same at every horizon (each
    customer's expected purchases are their pattern's), so a forecast of many horizons
    (:func:`clv.kpis.model_forecast`) reads the customers once (:func:`pattern_spend`).

    Attributes
    ----------
    p : float
        Gamma-Gamma's shape of one transaction's spend.
    counts : numpy.ndarray
        Customers per pattern.
    now : numpy.ndarray
        Σ expected spend per transaction.
    second : numpy.ndarray
        Σ ``E[1/ν²]``.
    first_squared : numpy.ndarray
        Σ ``E[1/ν]²``.
    gradient : numpy.ndarray or None
        Σ ``∂ now / ∂ log θ`` of the customers whose expected spend is positive (patterns ×
        parameters); None without covariance.
    covariance : numpy.ndarray or None
        The covariance of the spend model's log parameters, beside ``gradient``.
    """

    p: float
    counts: np.ndarray
    now: np.ndarray
    second: np.ndarray
    first_squared: np.ndarray
    gradient: np.ndarray | None
    covariance: np.ndarray | None


def pattern_spend(
    spend: Any,
    frequency: np.ndarray,
    monetary_value: np.ndarray,
    inverse: np.ndarray,
    patterns: int,
    terms: SpendTerms | None = None,
    size: int = SCORE_ROWS,
) -> PatternSpend:
    """:class:`PatternSpend` of customers whose pattern is ``inverse`` (of ``patterns``): their
    :func:`spend_terms` (``terms`` when the caller has them), summed a block of ``size``
    customers at a time."""
    x = np.asarray(frequency, dtype=float)
    m = np.asarray(monetary_value, dtype=float)
    sums = {k: np.zeros(patterns) for k in ("now", "second", "first_squared")}
    gradient, covariance = None, None
    for rows in blocks(np.arange(len(x)), size):
        some = spend_terms(spend, x[rows], m[rows]) if terms is None else terms.rows(rows)
        codes = inverse[rows]
        for name, values in (
            ("now", some.now),
            ("second", some.second),
            ("first_squared", some.first**2),
        ):
            sums[name] += np.bincount(codes, weights=values, minlength=patterns)
        if some.gradient is not None and some.covariance is not None:
            positive = some.gradient * (some.now > 0)[:, None]  # as SpendTerms.value_gradient
            part = np.stack(
                [np.bincount(codes, weights=col, minlength=patterns) for col in positive.T],
                axis=1,
            )
            gradient = part if gradient is None else gradient + part
            covariance = some.covariance
    p = spend.params["p"] if terms is None else terms.p
    counts = np.bincount(inverse, minlength=patterns).astype(float)
    return PatternSpend(p=p, counts=counts, gradient=gradient, covariance=covariance, **sums)


def pattern_ranges(
    purchase: Any,
    t: float,
    patterns: np.ndarray,
    counts: np.ndarray,
    expected: np.ndarray | None = None,
    spend: PatternSpend | None = None,
    margin: float = 1.0,
    level: float = 0.8,
) -> dict[str, Range]:
    """The ranges of the totals of an undiscounted forecast over ``(T, T + t]`` from the
    patterns alone: ``purchases`` and, with ``spend``, ``clv`` — the sums of
    ``forecast(customers=False)`` regrouped by pattern (equal to rounding).

    Parameters
    ----------
    purchase : PurchaseModel or EnsembleModel
    t : float
        Horizon in the model's time unit.
    patterns : numpy.ndarray
        The distinct ``(x, t_x, T)`` rows (:func:`clv.models.patterns.rfm_patterns_index`).
    counts : numpy.ndarray
        Customers per pattern.
    expected : numpy.ndarray, optional
        Each pattern's expected purchases over the horizon, when the caller has them.
    spend : PatternSpend, optional
        The customers' spend terms by pattern (:func:`pattern_spend`).
    margin, level : float

    Returns
    -------
    dict of Range
    """
    px, ptx, pT = patterns.T if len(patterns) else (np.zeros(0),) * 3
    mean, variance = purchase_moments(purchase, t, px, ptx, pT)
    if expected is None:
        expected = purchase.expected_purchases(t, px, ptx, pT) if len(px) else px
    sensitivity = purchase_sensitivity(purchase, t, px, ptx, pT)
    ranges = {
        "purchases": make_range(
            float(expected @ counts), float(variance @ counts), sensitivity.sd(counts), level
        )
    }
    if spend is None:
        return ranges
    # a customer's value: scale × (spend of X purchases), scale = margin where the pattern
    # expects purchases (value_moments; its terms summed over the pattern's customers)
    scale = np.where(expected > 0, margin, 0.0)
    p = spend.p
    square = variance + mean**2
    with np.errstate(invalid="ignore"):
        raw = scale**2 * (p * mean + p**2 * square) * spend.second
        value_variance = np.where(mean > 0, raw - (scale * p * mean) ** 2 * spend.first_squared, 0)
    weights = scale * spend.now  # ∂ total / ∂ expected purchases of each pattern
    gradient = None if spend.gradient is None else (scale * expected) @ spend.gradient
    spend_sd = delta_sd(gradient, spend.covariance)
    ranges["clv"] = make_range(
        float(expected @ weights),
        float(np.maximum(value_variance, 0.0).sum()),
        float(np.hypot(sensitivity.sd(weights), spend_sd)),
        level,
    )
    return ranges


@dataclass(frozen=True)
class Sensitivity:
    """How the expected purchases of each pattern move with the parameters of each fitted
    purchase model behind a forecast (the ensemble's members, or the model itself).

    Attributes
    ----------
    gradients : tuple of numpy.ndarray
        Per model, ``∂ E[X(t)] / ∂ log θ`` of each pattern (patterns × parameters), by central
        differences.
    covariances : tuple
        Per model, the covariance of its log parameters (``None`` when it carries none).
    """

    gradients: tuple[np.ndarray, ...]
    covariances: tuple[np.ndarray | None, ...]

    def sd(self, weights: np.ndarray) -> float:
        """Delta-method standard deviation of ``Σ weights × expected purchases`` over the
        parameters; the ensemble's members count by their share, added as if perfectly
        correlated (an upper bound: they are fitted on the same data). NaN without covariance.
        """
        parts = [
            delta_sd(weights @ gradient, covariance)
            for gradient, covariance in zip(self.gradients, self.covariances, strict=True)
        ]
        return float(sum(parts) / len(parts))  # NaN if a member has no covariance


def purchase_sensitivity(
    model: Any, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, step: float = 1e-4
) -> Sensitivity:
    """:class:`Sensitivity` of ``model``'s expected purchases in ``(T, T + t]`` at the patterns."""
    gradients, covariances = [], []
    for member in getattr(model, "members", (model,)):
        point = member.log_params
        covariance = np.asarray(member.covariance, dtype=float)
        # a parameter the fit held fixed (MBG/CNBD-k's k: variance 0) moves nothing
        free = np.diag(covariance) > 0 if covariance.size else np.ones(point.size, dtype=bool)

        def expected(moved: np.ndarray, m: Any = member, free: np.ndarray = free) -> np.ndarray:
            at = m.log_params
            at[free] = moved
            return m.with_log_params(at).expected_purchases(t, x, t_x, T)

        gradient = np.zeros((len(x), point.size))  # (0, k) for no patterns
        if free.any():
            gradient[:, free] = central_gradient(expected, point[free], step).reshape(
                len(x), int(free.sum())
            )
        gradients.append(gradient)
        covariances.append(covariance if covariance.size else None)
    return Sensitivity(tuple(gradients), tuple(covariances))
