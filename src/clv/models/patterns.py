"""Customers as distinct ``(x, t_x, T)`` patterns: what every purchase model fits and scores.

A purchase model's likelihood and scores depend on a customer's frequency, recency and age
only, and logs have far fewer distinct patterns than customers; fitting weights each pattern by
its count, and scoring evaluates each pattern once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Patterns:
    """Unique ``(x, t_x, T)`` customer patterns and their counts.

    Parameters
    ----------
    x, t_x, T, weight : numpy.ndarray
        Frequency, recency, age and number of customers of each pattern (float arrays of one
        length; time in any one unit).
    log_gap_sum : float, optional
        Sum over customers of the logs of their times between purchases (in the same unit), when
        known: what a model of purchase regularity adds to the patterns' likelihood.
    """

    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    weight: np.ndarray
    log_gap_sum: float | None = None

    @classmethod
    def from_table(cls, table: pd.DataFrame) -> Patterns:
        """From a table with ``frequency``, ``recency``, ``T`` and ``weight`` columns
        (:func:`rfm_patterns`)."""
        return cls(
            *(table[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T", "weight"))
        )

    @classmethod
    def of(cls, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> Patterns:
        """Histories given as arrays (broadcast together, flattened), each with weight 1."""
        x, t_x, T = np.broadcast_arrays(x, t_x, T)
        return cls(x.ravel(), t_x.ravel(), T.ravel(), np.ones(x.size))

    @cached_property
    def total(self) -> float:
        """Number of customers."""
        return float(self.weight.sum())

    @cached_property
    def x_groups(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Distinct ``x`` values, each pattern's index among them, and the total weight of each."""
        values, inverse = np.unique(self.x, return_inverse=True)
        return values, inverse, np.bincount(inverse, weights=self.weight)

    @property
    def by_x(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct ``x`` values and the total weight of each."""
        values, _, weight = self.x_groups
        return values, weight

    @cached_property
    def repeat(self) -> np.ndarray:
        """Whether each pattern has a repeat purchase."""
        return self.x > 0

    def scaled(self, factor: float) -> Patterns:
        """The same patterns with time multiplied by ``factor``."""
        return Patterns(self.x, self.t_x * factor, self.T * factor, self.weight)  # no log gaps


def rfm_patterns_index(rfm: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Unique ``(frequency, recency, T)`` rows (floats, in order of first appearance) and, per
    customer, the index of its row.

    A hash group-by (20x faster than ``np.unique(axis=0)`` at 1M customers). Fitting and scoring
    both work on these patterns: outputs depend on nothing else, and logs have far fewer
    patterns than customers.
    """
    keys = rfm[["frequency", "recency", "T"]].astype(float).reset_index(drop=True)
    codes = keys.groupby(["frequency", "recency", "T"], sort=False).ngroup().to_numpy()
    first = ~pd.Series(codes).duplicated().to_numpy()  # codes follow first appearance
    return keys[first].to_numpy(), codes


def distinct_histories(
    x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The distinct ``(x, t_x, T)`` rows of flat float arrays (in order of first appearance),
    and each history's row among them.

    Two hashings of complex keys (``x + i·t_x``, then its code ``+ i·T``): 0.14 s at 1M
    customers, as fast as :func:`rfm_patterns_index` without building a frame.
    """
    pairs, pair_keys = pd.factorize(x + 1j * t_x)
    which, keys = pd.factorize(pairs + 1j * T)
    pair = pair_keys[keys.real.astype(np.intp)]
    return which, pair.real, pair.imag, keys.imag


def rfm_patterns(rfm: pd.DataFrame) -> pd.DataFrame:
    """Collapse customers into unique ``(frequency, recency, T)`` rows with a ``weight`` count."""
    patterns, index = rfm_patterns_index(rfm)
    table = pd.DataFrame(patterns, columns=["frequency", "recency", "T"])
    return table.assign(weight=np.bincount(index, minlength=len(table)))


def describe_pattern(rfm: pd.DataFrame) -> str:
    """One sentence about the data a purchase model sees, for error messages."""
    n = len(rfm)
    if n == 0:
        return "no customers"
    zero = float((rfm["frequency"] == 0).mean())
    return (
        f"{n:,} customers, {zero:.1%} with no repeat purchase, frequency up to "
        f"{int(rfm['frequency'].max())}, T from {rfm['T'].min():.2f} to {rfm['T'].max():.2f}"
    )
