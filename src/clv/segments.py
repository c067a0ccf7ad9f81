"""Value tiers: the top 10 % of customers by predicted value, the next 20 %, the rest.

One definition for every place that draws tiers — the KPI report ranks a population
(:func:`value_segments`); a bundle stores the thresholds of its training population
(:func:`clv.predict.define_segments`) and scoring, local or on Spark, applies them
(:func:`apply_segments`), so a customer's tier depends on the customer and the model only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clv.config import DEFAULT_SEGMENTS
from clv.metrics import highest_first


def value_segments(
    ranking: np.ndarray, tiers: dict[str, float] | None = None, rest: str = "rest"
) -> np.ndarray:
    """Assign tiers from the top of ``ranking``: e.g. top 10 %, next 20 %, rest.

    Ranks *within* ``ranking``: used for population reports (KPIs) and to define the thresholds
    of a bundle's segments; scoring applies those thresholds (:func:`apply_segments`).

    >>> value_segments(np.array([5.0, 1.0, 3.0, 9.0, 0.0]), {"top": 0.2, "high": 0.4}).tolist()
    ['high', 'rest', 'high', 'top', 'rest']
    """
    tiers = DEFAULT_SEGMENTS if tiers is None else tiers
    n = len(ranking)
    position = np.empty(n, dtype=float)
    position[highest_first(np.asarray(ranking, dtype=float))] = np.arange(1, n + 1)
    out = np.full(n, rest, dtype=object)
    for name, size in reversed(list(tier_sizes(tiers, n).items())):  # widest tier first
        out[position <= size] = name
    return out


def cumulative_shares(tiers: dict[str, float]) -> dict[str, float]:
    """Share of customers from the top that each tier reaches (its own and those above it)."""
    total, out = 0.0, {}
    for name, share in tiers.items():
        total += share
        out[name] = total
    return out


def apply_segments(values: np.ndarray, rule: dict[str, Any], basis: str) -> np.ndarray:
    """The tier of each value under a bundle's rule (:func:`clv.predict.define_segments`).

    >>> tiers = [{"name": "top", "clv": 9.0}, {"name": "high", "clv": 3.0}]
    >>> rule = {"rest": "rest", "tiers": tiers}
    >>> apply_segments(np.array([5.0, 1.0, 3.0, 9.0]), rule, "clv").tolist()
    ['high', 'rest', 'high', 'top']
    """
    out = np.full(len(values), rule["rest"], dtype=object)
    for tier in reversed(rule["tiers"]):  # widest tier first
        if tier[basis] is not None:  # None: the tier held no training customer
            out[np.asarray(values) >= tier[basis]] = tier["name"]
    return out


def tier_sizes(tiers: dict[str, float], n: int) -> dict[str, int]:
    """Number of customers from the top that each tier reaches, cumulatively, among ``n``.

    >>> tier_sizes({"top": 0.1, "high": 0.2}, 25)
    {'top': 3, 'high': 8}
    """
    return {
        name: int(np.ceil(share * n - 1e-9)) for name, share in cumulative_shares(tiers).items()
    }
