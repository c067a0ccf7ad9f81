"""The ``stacked`` candidate: the single candidates mixed with weights the holdouts choose.

Each single candidate fitted on a calibration period gives every customer a predictive
distribution of their holdout purchases (its ``purchase_pmf``); the probability it gave to what
the customer then did is that model's *holdout density*. Stacking (Yao, Vehtari, Simpson &
Gelman 2018) weighs the candidates to maximise the log score of the mixture of those
distributions (:func:`clv.models.ensemble.stack_weights`): a model that is right about a group
the others miss earns weight even when it is not the best on average, which equal weights and a
single winner both ignore.

Honesty. Weights fitted on a holdout flatter the mixture on that same holdout, so its scores are
cross-fitted: with two holdout windows (:mod:`clv.origins`) each is scored with weights fitted on
the other; with one, each half of its customers with weights fitted on the other half. The
mixture shipped has the weights fitted on everything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from clv.models.ensemble import EnsembleModel, stack_weights
from clv.models.registry import STACKED

#: At most this many customers of a window enter the weights (a seeded sample): a handful of
#: weights is well estimated from far fewer, and a PMF per customer costs time on a big log.
MAX_STACKING_CUSTOMERS = 100_000
#: Rows per ``purchase_pmf`` call (memory: rows × the largest holdout count).
CHUNK = 20_000
#: A member whose weight is below this leaves the mixture (the rest renormalised): it would
#: cost a refit on the whole log for no visible change in any score.
MIN_WEIGHT = 1e-3


@dataclass(frozen=True)
class Densities:
    """Each candidate's holdout density at the observed counts of one window's patterns.

    Attributes
    ----------
    values : dict
        Candidate → probability it gave each pattern's observed holdout count.
    counts : numpy.ndarray
        Customers per pattern (of the sample, when the window was sampled).
    """

    values: dict[str, np.ndarray]
    counts: np.ndarray

    def matrix(self, kinds: Sequence[str]) -> np.ndarray:
        """Patterns × ``kinds``."""
        return np.column_stack([self.values[k] for k in kinds])


def holdout_densities(
    models: Mapping[str, Any],
    duration: float,
    cal: pd.DataFrame,
    seed: int = 0,
) -> Densities:
    """The holdout density of each model in ``models`` on the calibration table ``cal``
    (``frequency``, ``recency``, ``T``, ``frequency_holdout``), on its distinct patterns and on
    a seeded sample of :data:`MAX_STACKING_CUSTOMERS` customers when it has more."""
    table = cal[["frequency", "recency", "T", "frequency_holdout"]]
    if len(table) > MAX_STACKING_CUSTOMERS:
        table = table.sample(MAX_STACKING_CUSTOMERS, random_state=seed)
    patterns = table.value_counts(sort=False).reset_index(name="customers")
    x, t_x, T = (patterns[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    k = patterns["frequency_holdout"].to_numpy(dtype=int)
    values = {}
    for kind, model in models.items():
        out = np.empty(len(patterns))
        for start in range(0, len(patterns), CHUNK):
            rows = slice(start, start + CHUNK)
            pmf = model.purchase_pmf(duration, x[rows], t_x[rows], T[rows], int(k[rows].max()))
            out[rows] = pmf[np.arange(len(pmf)), k[rows]]
        values[kind] = out
    return Densities(values, patterns["customers"].to_numpy(dtype=float))


def fit_weights(windows: Sequence[Densities], kinds: Sequence[str]) -> np.ndarray:
    """Stacking weights of ``kinds`` on the pooled patterns of ``windows``."""
    densities = np.vstack([w.matrix(kinds) for w in windows])
    counts = np.concatenate([w.counts for w in windows])
    weights = stack_weights(densities, counts)
    weights[weights < MIN_WEIGHT] = 0.0
    return weights / weights.sum()


def mixture(members: Mapping[str, Any], weights: np.ndarray) -> EnsembleModel:
    """The stacked mixture of ``members`` (in order) at ``weights``, without the members of
    weight 0."""
    kept = [(m, float(w)) for m, w in zip(members.values(), weights, strict=True) if w > 0]
    return EnsembleModel(tuple(m for m, _ in kept), kind=STACKED, weights=tuple(w for _, w in kept))


def log_score(
    parts: Sequence[Densities], kinds: Sequence[str], weights: Sequence[np.ndarray]
) -> float:
    """Mean holdout log score per customer of the mixture of ``kinds`` over ``parts``, each
    part at its own ``weights`` (cross-fitted weights: each part's from the others)."""
    total, customers = 0.0, 0.0
    for part, w in zip(parts, weights, strict=True):
        mixed = np.maximum(part.matrix(kinds) @ np.asarray(w, dtype=float), 1e-300)
        total += float(part.counts @ np.log(mixed))
        customers += float(part.counts.sum())
    return total / customers
