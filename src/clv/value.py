"""Discounted customer lifetime value over a finite horizon.

    CLV = margin × Σ_k [E(X(t_k)) − E(X(t_{k−1}))] × E(spend) / (1 + d)^k

with steps of one time unit (the scoring unit), ``t_0 = 0`` and ``t_k = k`` for whole steps; a
fractional horizon ``h`` ends with a partial step at ``t = h``, discounted by ``(1 + d)^h``.
``d`` is the discount rate **per time unit** (0.0019 per week is about 10 % a year); purchases in
a step are discounted as if they fell at its end, as lifetimes does.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def step_boundaries(horizon: float) -> np.ndarray:
    """Return the ends of the discounting steps: ``1, 2, …, ⌊h⌋`` and ``h`` if fractional.

    >>> step_boundaries(3).tolist()
    [1.0, 2.0, 3.0]
    >>> step_boundaries(2.5).tolist()
    [1.0, 2.0, 2.5]
    """
    if horizon <= 0:
        raise ValueError(f"horizon must be positive, got {horizon}")
    whole = np.arange(1.0, np.floor(horizon) + 1.0)
    if whole.size == 0 or horizon > whole[-1]:
        whole = np.append(whole, float(horizon))
    return whole


def discounted_purchases(
    cumulative_purchases: Callable[[float], np.ndarray],
    horizon: float,
    step_length: float = 1.0,
    discount_rate: float = 0.0,
) -> np.ndarray:
    """Σ_k [E(X(t_k)) − E(X(t_{k−1}))] / (1 + d)^k: the discounted expected purchases.

    CLV is this times margin times expected spend (:func:`discounted_clv`); it depends only on
    the purchase history, so scoring computes it once per (x, t_x, T) pattern.
    """
    total: np.ndarray | None = None
    previous: np.ndarray | float = 0.0
    for k in step_boundaries(horizon):
        current = np.asarray(cumulative_purchases(k * step_length), dtype=float)
        term = (current - previous) / (1.0 + discount_rate) ** k
        total = term if total is None else total + term
        previous = current
    return total


def discounted_clv(
    cumulative_purchases: Callable[[float], np.ndarray],
    expected_value: np.ndarray,
    horizon: float,
    step_length: float = 1.0,
    discount_rate: float = 0.0,
    margin: float = 1.0,
) -> np.ndarray:
    """Margin-weighted, discounted value of the purchases expected within a horizon.

    Parameters
    ----------
    cumulative_purchases : callable
        ``t ↦`` expected purchases in ``(T, T + t]`` per customer, with ``t`` in model units.
    expected_value : numpy.ndarray
        Expected spend per transaction per customer.
    horizon : float
        Number of steps (may be fractional).
    step_length : float
        Length of one step in model units (e.g. 1/7 when the model is in weeks and the step a day).
    discount_rate : float
        Discount rate per step.
    margin : float
        Share of spend that is profit.

    Returns
    -------
    numpy.ndarray
        CLV per customer.
    """
    discounted = discounted_purchases(cumulative_purchases, horizon, step_length, discount_rate)
    return margin * discounted * np.asarray(expected_value, dtype=float)
