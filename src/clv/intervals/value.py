"""Each customer's value interval: the spend of the future purchases (Gamma-Gamma posterior),
summed over the purchase distribution, as a zero-inflated Gamma matched to two moments; and the
exact mixture's quantiles it is checked against."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.special import betainc, gammaincinv

from clv.intervals.purchases import PurchaseDistribution, quantile_levels
from clv.models.optimize import central_gradient


@dataclass(frozen=True)
class ValueInterval:
    """Each customer's interval of value over the horizon, with its moments."""

    low: np.ndarray
    high: np.ndarray
    mean: np.ndarray
    variance: np.ndarray


@dataclass(frozen=True)
class SpendTerms:
    """What a value forecast needs of the spend model, per customer; the same at every horizon
    (so a forecast of several horizons computes it once: :func:`spend_terms`).

    Attributes
    ----------
    p : float
        Gamma-Gamma's shape of one transaction's spend.
    now : numpy.ndarray
        Expected spend per transaction (:meth:`SpendModel.expected_average_value`).
    first, second : numpy.ndarray
        ``E[1/ν]`` and ``E[1/ν²]`` of the posterior spend rate (:meth:`SpendModel.rate_moments`).
    gradient : numpy.ndarray or None
        ``∂ now / ∂ log θ`` (customers × parameters, central differences); None when the model
        carries no covariance or it was not asked for.
    covariance : numpy.ndarray or None
        The covariance of the log parameters, beside ``gradient``.
    """

    p: float
    now: np.ndarray
    first: np.ndarray
    second: np.ndarray
    gradient: np.ndarray | None = None
    covariance: np.ndarray | None = None

    def rows(self, rows: np.ndarray) -> SpendTerms:
        """The terms of some of these customers."""
        gradient = None if self.gradient is None else self.gradient[rows]
        return replace(
            self,
            now=self.now[rows],
            first=self.first[rows],
            second=self.second[rows],
            gradient=gradient,
        )

    def value_gradient(self, value: np.ndarray) -> np.ndarray | None:
        """``∂ Σ value / ∂ log θ`` of a total whose terms scale with each customer's expected
        spend per transaction (None without covariance); it adds over groups of customers."""
        if self.gradient is None or self.covariance is None:
            return None
        with np.errstate(divide="ignore", invalid="ignore"):
            per_spend = np.where(self.now > 0, value / self.now, 0.0)
        return per_spend @ self.gradient

    def sd(self, gradient: np.ndarray | None) -> float:
        """Delta-method standard deviation over the spend parameters of a total with this
        :meth:`value_gradient` (NaN for None)."""
        return delta_sd(gradient, self.covariance)

    def parameter_sd(self, value: np.ndarray) -> float:
        """Delta-method standard deviation, over the spend parameters, of a total ``Σ value``
        whose terms scale with each customer's expected spend per transaction (NaN without
        covariance)."""
        return self.sd(self.value_gradient(value))


def delta_sd(gradient: np.ndarray | None, covariance: np.ndarray | None) -> float:
    """Delta-method standard deviation ``sqrt(g' Σ g)`` of a total with gradient ``g`` over
    parameters of covariance ``Σ`` (NaN when either is missing)."""
    if gradient is None or covariance is None:
        return float("nan")
    return float(np.sqrt(max(float(gradient @ covariance @ gradient), 0.0)))


def spend_terms(
    spend: Any,
    frequency: np.ndarray,
    monetary_value: np.ndarray,
    gradient: bool = True,
    step: float = 1e-4,
) -> SpendTerms:
    """:class:`SpendTerms` of ``spend`` for these customers (``gradient``: with the parameter
    sensitivities, for the ranges of totals)."""
    x = np.asarray(frequency, dtype=float)
    m = np.asarray(monetary_value, dtype=float)
    first, second = spend.rate_moments(x, m)
    covariance = np.asarray(getattr(spend, "covariance", ()), dtype=float)
    jacobian = None
    if gradient and covariance.size:
        jacobian = central_gradient(
            lambda p: spend.with_log_params(p).expected_average_value(x, m),
            spend.log_params,
            step,
        ).reshape(len(x), len(spend.log_params))
    return SpendTerms(
        p=spend.params["p"],
        now=spend.expected_average_value(x, m),
        first=first,
        second=second,
        gradient=jacobian,
        covariance=covariance if jacobian is not None else None,
    )


def value_moments(
    terms: SpendTerms,
    purchases_mean: np.ndarray,
    purchases_variance: np.ndarray,
    scale: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of ``scale × (spend of the next X purchases)`` per customer.

    Given X = k purchases and the spend rate ν, their total is Gamma(p·k, ν); so with
    ``E[1/ν]``, ``E[1/ν²]`` of the posterior (``terms``: :func:`spend_terms`) the total has
    mean ``p·E[X]·E[1/ν]`` and second moment ``(p·E[X] + p²·E[X²])·E[1/ν²]`` (X and ν are
    independent given the history: Gamma-Gamma's assumption).
    """
    p = terms.p
    square = purchases_variance + purchases_mean**2
    mean = scale * p * purchases_mean * terms.first
    with np.errstate(invalid="ignore"):
        raw = scale**2 * (p * purchases_mean + p**2 * square) * terms.second
        variance = np.where(purchases_mean > 0, raw - mean**2, 0.0)
    return mean, np.maximum(variance, 0.0)


def value_interval(
    spend: Any,
    frequency: np.ndarray,
    monetary_value: np.ndarray,
    purchases: PurchaseDistribution,
    scale: np.ndarray,
    level: float,
    exact_pmf: Callable[[np.ndarray], np.ndarray] | None = None,
    terms: SpendTerms | None = None,
) -> ValueInterval:
    """The ``level`` interval of each customer's value over the horizon (see module docs).

    Parameters
    ----------
    spend : SpendModel
    frequency, monetary_value : numpy.ndarray
        Per customer.
    purchases : PurchaseDistribution
        Per customer (expanded from the patterns).
    scale : numpy.ndarray
        Per customer: margin × discounted / undiscounted expected purchases.
    level : float
    exact_pmf : callable, optional
        ``rows → purchase PMF table`` of those customers; used for the few whose spend
        posterior has no finite variance (``p·x + q ≤ 2``), where the exact mixture is taken
        instead of the moment match. Without it, their upper bound is infinite.
    terms : SpendTerms, optional
        ``spend``'s terms of these customers when the caller has them (:func:`spend_terms`).
    """
    q_low, q_high = quantile_levels(level)
    if terms is None:
        terms = spend_terms(spend, frequency, monetary_value, gradient=False)
    mean, variance = value_moments(terms, purchases.mean, purchases.variance, scale)
    low = _zero_inflated_gamma_quantile(q_low, purchases.p_zero, mean, variance)
    high = _zero_inflated_gamma_quantile(q_high, purchases.p_zero, mean, variance)
    heavy = ~np.isfinite(variance) | ~np.isfinite(high)
    if heavy.any() and exact_pmf is not None:
        rows = np.flatnonzero(heavy)
        table = exact_pmf(rows)
        bounds = exact_value_quantiles(
            spend, frequency[rows], monetary_value[rows], table, scale[rows], (q_low, q_high)
        )
        low[rows], high[rows] = bounds[:, 0], bounds[:, 1]
    return ValueInterval(low=low, high=high, mean=mean, variance=variance)


def _zero_inflated_gamma_quantile(
    u: float, p_zero: np.ndarray, mean: np.ndarray, variance: np.ndarray
) -> np.ndarray:
    """Quantile ``u`` of a mass ``p_zero`` at 0 and, above, a Gamma with the positive part's
    mean and variance implied by the whole's ``mean`` and ``variance``."""
    positive = 1.0 - p_zero
    out = np.zeros_like(mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        m_pos = mean / positive
        v_pos = (variance + mean**2) / positive - m_pos**2
        shape = m_pos**2 / v_pos
        scale = v_pos / m_pos
        level = (u - p_zero) / positive
        inside = (u > p_zero) & (mean > 0)
        degenerate = inside & ~(v_pos > 0)  # no spread left: the mean itself
        gamma = inside & (v_pos > 0)
        out[gamma] = gammaincinv(shape[gamma], level[gamma]) * scale[gamma]
        out[degenerate] = m_pos[degenerate]
    return out


def exact_value_quantiles(
    spend: Any,
    frequency: np.ndarray,
    monetary_value: np.ndarray,
    pmf: np.ndarray,
    scale: np.ndarray,
    levels: tuple[float, ...],
    iterations: int = 60,
) -> np.ndarray:
    """Quantiles of ``scale × spend of the next X purchases`` from the exact mixture.

    Given X = k ≥ 1 and the posterior ν ~ Gamma(A, B), the spend ``S`` of k purchases has
    ``S / (S + B) ~ Beta(p·k, A)``, so ``P(S ≤ c) = Σ_k P(X = k) · I_{c/(c+B)}(p·k, A)``, a
    closed form that is bisected (on a log scale) for each level. Slower than the moment match
    of :func:`value_interval` by the width of the PMF table; its reference.

    Returns
    -------
    numpy.ndarray
        Shape ``(customers, len(levels))``.
    """
    x = np.asarray(frequency, dtype=float)
    m = np.asarray(monetary_value, dtype=float)
    p, q, v = (spend.params[n] for n in ("p", "q", "v"))
    usable = (x > 0) & (m > 0)
    shape = np.where(usable, p * x + q, q)[:, None]
    rate = np.where(usable, v + x * np.where(usable, m, 0.0), v)[:, None]
    k = np.arange(1, pmf.shape[1], dtype=float)[None, :]
    weights = pmf[:, 1:]

    def cdf(c: np.ndarray) -> np.ndarray:
        z = (c / (c + rate[:, 0]))[:, None]
        return pmf[:, 0] + (weights * betainc(p * k, shape, z)).sum(axis=1)

    out = np.zeros((len(x), len(levels)))
    expected = pmf @ np.arange(pmf.shape[1], dtype=float)
    typical = p * rate[:, 0] / np.maximum(shape[:, 0] - 1.0, 0.5) * np.maximum(1.0, expected)
    for j, u in enumerate(levels):
        positive = pmf[:, 0] < u
        lo = np.full(len(x), -60.0)
        hi = np.log(np.maximum(typical, 1e-300)) + 60.0
        for _ in range(iterations):
            mid = (lo + hi) / 2.0
            below = cdf(np.exp(mid)) < u
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        out[:, j] = np.where(positive, np.exp(hi), 0.0) * np.asarray(scale, dtype=float)
    return out
