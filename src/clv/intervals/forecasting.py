"""The forecast of a customer list with its intervals and the totals' ranges, in one call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from clv.intervals.purchases import (
    PurchaseDistribution,
    full_pmf,
    purchase_distribution,
    purchase_moments,
)
from clv.intervals.ranges import (
    Range,
    make_range,
    pattern_ranges,
    pattern_spend,
    purchase_sensitivity,
)
from clv.intervals.value import SpendTerms, spend_terms, value_interval, value_moments
from clv.models.groups import SCORE_ROWS, blocks


@dataclass(frozen=True)
class Forecast:
    """Each customer's intervals and the totals' ranges of a forecast.

    Attributes
    ----------
    columns : dict
        ``expected_purchases_low/high`` and, with a spend model, ``clv_low/high`` (empty for
        a forecast of the totals only: ``forecast(customers=False)``).
    ranges : dict
        ``purchases`` (total expected purchases) and, with a spend model, ``clv``.
    """

    columns: dict[str, np.ndarray]
    ranges: dict[str, Range]


def forecast(
    purchase: Any,
    spend: Any | None,
    t: float,
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    monetary_value: np.ndarray | None = None,
    discounted: np.ndarray | None = None,
    margin: float = 1.0,
    level: float = 0.8,
    customers: bool = True,
    expected: np.ndarray | None = None,
    index: tuple[np.ndarray, np.ndarray] | None = None,
    terms: SpendTerms | None = None,
    size: int = SCORE_ROWS,
) -> Forecast:
    """Intervals of every customer and ranges of the totals over ``(T, T + t]``.

    Parameters
    ----------
    purchase : PurchaseModel or EnsembleModel
    spend : SpendModel, optional
        With ``monetary_value``: the value intervals and the CLV total's range.
    t : float
        Horizon in the model's time unit.
    x, t_x, T : numpy.ndarray
        One row per customer.
    monetary_value : numpy.ndarray, optional
    discounted : numpy.ndarray, optional
        Discounted expected purchases per customer (the CLV's; undiscounted when omitted).
    margin : float
    level : float
    customers : bool
        Whether to compute the customers' intervals (``False``: the totals' ranges only, from
        the moments of each pattern's purchases, :func:`purchase_moments`; undiscounted, the
        customers' terms summed by pattern first, :func:`pattern_ranges`).
    expected : numpy.ndarray, optional
        Each customer's expected purchases over the horizon when the caller has them already
        (computed here otherwise).
    index : tuple of numpy.ndarray, optional
        The distinct ``(x, t_x, T)`` patterns and each customer's row among them
        (:func:`clv.models.patterns.rfm_patterns_index`) when the caller has them already.
    terms : SpendTerms, optional
        ``spend``'s terms of these customers, with their gradient, when the caller forecasts
        several horizons (:func:`spend_terms`; computed here otherwise).
    size : int
        Customers per block of the value totals when ``customers`` is False (the same sums,
        added block by block: :data:`clv.models.groups.SCORE_ROWS`).

    Returns
    -------
    Forecast
    """
    index = _index(x, t_x, T) if index is None else index
    patterns, inverse = index
    px, ptx, pT = patterns.T if len(patterns) else (np.zeros(0),) * 3
    counts = np.bincount(inverse, minlength=len(patterns)).astype(float)
    expected_by_pattern = _by_pattern(purchase, t, index, expected)
    if not customers and discounted is None:  # every term is its pattern's: summed by pattern
        sums = None
        if spend is not None and monetary_value is not None:
            sums = pattern_spend(spend, x, monetary_value, inverse, len(patterns), terms, size)
        ranges = pattern_ranges(
            purchase, t, patterns, counts, expected_by_pattern, sums, margin, level
        )
        return Forecast({}, ranges)
    mean, variance, spread = _purchase_spread(purchase, t, index, level, customers)
    columns = {}
    if spread is not None:
        columns = {"expected_purchases_low": spread.low, "expected_purchases_high": spread.high}
    expected = expected_by_pattern[inverse]
    sensitivity = purchase_sensitivity(purchase, t, px, ptx, pT)
    ranges = {
        "purchases": make_range(
            float(expected.sum()),
            float((variance * counts).sum()),
            sensitivity.sd(counts),
            level,
        )
    }
    if spend is None or monetary_value is None:
        return Forecast(columns, ranges)
    m = np.asarray(monetary_value, dtype=float)
    discounted = expected if discounted is None else np.asarray(discounted, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(expected > 0, margin * discounted / expected, 0.0)
        per_purchase = np.where(expected_by_pattern > 0, 1.0 / expected_by_pattern, 0.0)
    worth = margin * discounted  # each customer's CLV per unit of spend
    moments = (mean, variance, scale, per_purchase)
    if customers:
        history = (x, t_x, T, m)
        values, ranges["clv"] = _clv_intervals(
            purchase, spend, t, history, spread, worth, index, moments, sensitivity, terms, level
        )
        return Forecast(columns | values, ranges)
    ranges["clv"] = _clv_range_by_blocks(
        spend, x, m, worth, index, moments, sensitivity, terms, level, size
    )
    return Forecast(columns, ranges)


def _clv_range_by_blocks(
    spend: Any,
    x: np.ndarray,
    m: np.ndarray,
    worth: np.ndarray,
    index: tuple[np.ndarray, np.ndarray],
    moments: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    sensitivity: Any,
    terms: SpendTerms | None,
    level: float,
    size: int,
) -> Range:
    """The CLV total's range from sums over blocks of customers, so that the spend terms, their
    gradient and the value moments are held for one block at a time (the interval
    calibration's high point 5.66 -> 5.26 GB at 5.5M customers); the parameter terms add their
    gradients before the square root. ``worth`` is margin × discounted purchases per customer;
    ``moments`` each pattern's purchase mean and variance, each customer's value scale and each
    pattern's 1 / expected purchases."""
    patterns, inverse = index
    mean, variance, scale, per_purchase = moments
    total, total_variance, weights, spend_gradient = 0.0, 0.0, np.zeros(len(patterns)), None
    for rows in blocks(np.arange(len(x)), size):
        some = spend_terms(spend, x[rows], m[rows]) if terms is None else terms.rows(rows)
        codes = inverse[rows]
        clv = worth[rows] * some.now
        total += float(clv.sum())
        total_variance += float(
            value_moments(some, mean[codes], variance[codes], scale[rows])[1].sum()
        )
        weights += np.bincount(codes, weights=clv, minlength=len(patterns))
        part = some.value_gradient(clv)
        spend_gradient = part if spend_gradient is None else spend_gradient + part
    parameters = np.hypot(sensitivity.sd(weights * per_purchase), some.sd(spend_gradient))
    return make_range(total, total_variance, float(parameters), level)


def _by_pattern(
    purchase: Any, t: float, index: tuple[np.ndarray, np.ndarray], expected: np.ndarray | None
) -> np.ndarray:
    """Each pattern's expected purchases over ``t``: from the customers' when given."""
    patterns, inverse = index
    if expected is None:
        px, ptx, pT = patterns.T if len(patterns) else (np.zeros(0),) * 3
        return purchase.expected_purchases(t, px, ptx, pT) if len(px) else px
    by_pattern = np.zeros(len(patterns))
    by_pattern[inverse] = np.asarray(expected, dtype=float)
    return by_pattern


def _purchase_spread(
    purchase: Any,
    t: float,
    index: tuple[np.ndarray, np.ndarray],
    level: float,
    customers: bool,
) -> tuple[np.ndarray, np.ndarray, PurchaseDistribution | None]:
    """Each pattern's purchase mean and variance, and with ``customers`` each customer's
    purchase distribution (:func:`purchase_distribution`; only the moments otherwise)."""
    patterns, inverse = index
    px, ptx, pT = patterns.T if len(patterns) else (np.zeros(0),) * 3
    if not customers:  # the totals need each pattern's moments, not its interval
        mean, variance = purchase_moments(purchase, t, px, ptx, pT)
        return mean, variance, None
    by_pattern = purchase_distribution(purchase, t, px, ptx, pT, level)
    spread = PurchaseDistribution(
        **{k: getattr(by_pattern, k)[inverse] for k in ("low", "high", "mean", "variance")},
        p_zero=by_pattern.p_zero[inverse],
        inside=by_pattern.inside[inverse],
    )
    return by_pattern.mean, by_pattern.variance, spread


def _clv_intervals(
    purchase: Any,
    spend: Any,
    t: float,
    history: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    spread: PurchaseDistribution,
    worth: np.ndarray,
    index: tuple[np.ndarray, np.ndarray],
    moments: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    sensitivity: Any,
    terms: SpendTerms | None,
    level: float,
) -> tuple[dict[str, np.ndarray], Range]:
    """Each customer's CLV interval (:func:`value_interval`; ``history`` is x, t_x, T and the
    monetary value; ``moments`` as for :func:`_clv_range_by_blocks`) and the CLV total's
    range."""
    x, t_x, T, m = history
    patterns, inverse = index
    _, _, scale, per_purchase = moments
    terms = spend_terms(spend, x, m) if terms is None else terms

    def exact_pmf(rows: np.ndarray) -> np.ndarray:
        return full_pmf(purchase, t, x[rows], t_x[rows], T[rows])

    values = value_interval(spend, x, m, spread, scale, level, exact_pmf, terms)
    clv = worth * terms.now
    weights = np.bincount(inverse, weights=clv, minlength=len(patterns)) * per_purchase
    parameters = np.hypot(sensitivity.sd(weights), terms.parameter_sd(clv))
    total = make_range(float(clv.sum()), float(values.variance.sum()), float(parameters), level)
    return {"clv_low": values.low, "clv_high": values.high}, total


def _index(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``(x, t_x, T)`` patterns and each customer's row among them."""
    import pandas as pd

    from clv.models.patterns import rfm_patterns_index

    return rfm_patterns_index(pd.DataFrame({"frequency": x, "recency": t_x, "T": T}))
