"""Each customer's predictive distribution of purchases: the PMF tables once per distinct
(x, T), mixed with each pattern's P(alive); quantile intervals and moments."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

#: A predictive table ends once the probability above its last count is below this (the
#: variance it leaves out is below 1e-7 × the table's width²).
TAIL = 1e-7


#: First table width (counts 0 … 15), multiplied by 4 for the rows that need more.
FIRST_K = 15


#: Widest table (a forecast of tens of thousands of purchases per customer is beyond any log).
MAX_K = 4**8 - 1


#: Rows × counts per block of work (bounds the memory of a table).
CELLS = 1_000_000


def quantile_levels(level: float) -> tuple[float, float]:
    """The CDF levels of an equal-tailed ``level`` interval, e.g. 0.8 → (0.1, 0.9)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"an interval level must be between 0 and 1 (exclusive), got {level}")
    return (1.0 - level) / 2.0, (1.0 + level) / 2.0


@dataclass(frozen=True)
class PurchaseDistribution:
    """Summaries of each row's predictive distribution of purchases in ``(T, T + t]``.

    Attributes
    ----------
    low, high : numpy.ndarray
        The interval's bounds (whole counts).
    mean, variance : numpy.ndarray
        Its first two moments (from the table, tail below :data:`TAIL`).
    p_zero : numpy.ndarray
        P(no purchase).
    inside : numpy.ndarray
        The probability the interval holds, ``P(low ≤ X ≤ high)`` (at least the level).
    below, at : numpy.ndarray or None
        With ``observed`` counts y: ``P(X < y)`` and ``P(X ≤ y)`` (PIT and coverage).
    """

    low: np.ndarray
    high: np.ndarray
    mean: np.ndarray
    variance: np.ndarray
    p_zero: np.ndarray
    inside: np.ndarray
    below: np.ndarray | None = None
    at: np.ndarray | None = None


def _tables(
    pmf: Callable[[np.ndarray, int], np.ndarray], n: int, needed: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(rows, pmf table)`` blocks covering every row once, each table wide enough that
    its tail is below :data:`TAIL` and it reaches the row's ``needed`` count."""
    todo, k_max = np.arange(n), FIRST_K
    while todo.size:
        per_block = max(1, CELLS // (k_max + 1))
        later = []
        for start in range(0, todo.size, per_block):
            rows = todo[start : start + per_block]
            table = pmf(rows, k_max)
            done = (table.sum(axis=1) >= 1.0 - TAIL) & (needed[rows] <= k_max)
            if k_max >= MAX_K:
                done[:] = True
            if done.any():
                yield rows[done], table[done]
            later.append(rows[~done])
        todo, k_max = np.concatenate(later), 4 * (k_max + 1) - 1


def _pmf_of(
    model: Any, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> Callable[[np.ndarray, int], np.ndarray]:
    """``pmf(rows, k_max)``: the predictive table of some of these histories."""
    return lambda rows, k_max: model.purchase_pmf(t, x[rows], t_x[rows], T[rows], k_max)


def _raw_moments(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``E[X]`` and ``E[X²]`` of each row of a predictive table."""
    counts = np.arange(table.shape[1], dtype=float)
    return table @ counts, table @ counts**2


def purchase_moments(
    model: Any, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the purchases in ``(T, T + t]`` of each history: those of
    :func:`purchase_distribution` (the same tables, to the bit) without its intervals, for the
    ranges of totals, which need no customer's interval."""
    x, t_x, T = (np.ravel(np.asarray(v, dtype=float)) for v in (x, t_x, T))
    mean, second = np.zeros(len(x)), np.zeros(len(x))
    for rows, table in _tables(_pmf_of(model, t, x, t_x, T), len(x), np.zeros(len(x))):
        mean[rows], second[rows] = _raw_moments(table)
    return mean, np.maximum(second - mean**2, 0.0)


def purchase_distribution(
    model: Any,
    t: float,
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    level: float,
    observed: np.ndarray | None = None,
) -> PurchaseDistribution:
    """Intervals and moments of the purchases in ``(T, T + t]`` of each history.

    Parameters
    ----------
    model : PurchaseModel or EnsembleModel
        Anything with ``purchase_pmf(t, x, t_x, T, k_max)``.
    t : float
        Forecast length in the model's time unit.
    x, t_x, T : numpy.ndarray
        Histories (1-D, same length; pass distinct patterns for speed).
    level : float
        Interval level, e.g. 0.8.
    observed : numpy.ndarray, optional
        Realised counts: adds ``below`` and ``at`` (``P(X < y)``, ``P(X ≤ y)``).

    Returns
    -------
    PurchaseDistribution
    """
    x, t_x, T = (np.ravel(np.asarray(v, dtype=float)) for v in (x, t_x, T))
    q_low, q_high = quantile_levels(level)
    n = len(x)
    names = ("low", "high", "mean", "second", "p_zero", "inside", "below", "at")
    out = {k: np.zeros(n) for k in names}
    needed = np.zeros(n) if observed is None else np.asarray(observed, dtype=float)

    for rows, table in _tables(_pmf_of(model, t, x, t_x, T), n, needed):
        cdf = np.cumsum(table, axis=1)
        out["low"][rows] = (cdf < q_low).sum(axis=1)
        out["high"][rows] = (cdf < q_high).sum(axis=1)
        out["mean"][rows], out["second"][rows] = _raw_moments(table)
        out["p_zero"][rows] = table[:, 0]
        index = np.arange(len(rows))
        low, high = out["low"][rows].astype(int), out["high"][rows].astype(int)
        above_low = np.where(low > 0, cdf[index, np.maximum(low - 1, 0)], 0.0)
        out["inside"][rows] = cdf[index, np.minimum(high, table.shape[1] - 1)] - above_low
        if observed is not None:
            y = needed[rows].astype(int)
            out["at"][rows] = np.minimum(cdf[index, y], 1.0)
            out["below"][rows] = np.where(y > 0, cdf[index, np.maximum(y - 1, 0)], 0.0)
    return PurchaseDistribution(
        low=out["low"],
        high=out["high"],
        mean=out["mean"],
        variance=np.maximum(out["second"] - out["mean"] ** 2, 0.0),
        p_zero=out["p_zero"],
        inside=out["inside"],
        below=out["below"] if observed is not None else None,
        at=out["at"] if observed is not None else None,
    )


def full_pmf(model: Any, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """One PMF table for all rows, as wide as the widest row needs (for a few rows only)."""
    x, t_x, T = (np.ravel(np.asarray(v, dtype=float)) for v in (x, t_x, T))
    blocks = list(
        _tables(lambda r, k: model.purchase_pmf(t, x[r], t_x[r], T[r], k), len(x), np.zeros(len(x)))
    )
    width = max((table.shape[1] for _, table in blocks), default=1)
    out = np.zeros((len(x), width))
    for rows, table in blocks:
        out[rows, : table.shape[1]] = table
    return out
