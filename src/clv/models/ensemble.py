"""The ``ensemble`` candidate: an equal-weight mixture of fitted purchase models."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from clv.models.fitted import PurchaseModel
from clv.models.registry import ENSEMBLE


@dataclass(frozen=True)
class EnsembleModel:
    """An equal-weight mixture of fitted purchase models: the ``ensemble`` candidate.

    Each score quantity is the mixture's — the members' P(alive), expected purchases and
    P(no purchase) averaged — so it is scored by the same code as any model (local, pyfunc,
    Spark) and saved as its members' parameters. Averaging forecasts of different models is a
    cheap hedge against picking the wrong one on a noisy holdout; it is a candidate, chosen only
    when it scores best.
    """

    members: tuple[PurchaseModel, ...]
    kind: str = ENSEMBLE
    log_likelihood: float = float("nan")
    penalizer: float = 0.0

    @property
    def name(self) -> str:
        """Display name."""
        return f"Ensemble ({' + '.join(m.name for m in self.members)})"

    @property
    def time_unit(self) -> str:
        """Unit of recency, T and t (the members')."""
        return self.members[0].time_unit

    @property
    def params(self) -> dict[str, float]:
        """The members' parameters as ``kind.name`` (for printing and logging)."""
        return {f"{m.kind}.{k}": v for m in self.members for k, v in m.params.items()}

    @property
    def standard_errors(self) -> dict[str, float]:
        """The members' standard errors as ``kind.name`` (like :attr:`params`)."""
        return {f"{m.kind}.{k}": v for m in self.members for k, v in m.standard_errors.items()}

    def _mean(self, method: str, *args: Any) -> np.ndarray:
        return _combine([getattr(m, method)(*args) for m in self.members])

    def mean_of(
        self, fitted: Mapping[str, Any], computed: Mapping[str, np.ndarray]
    ) -> np.ndarray | None:
        """The mixture's value of a quantity from its members' values for the same customers:
        ``computed[kind]`` of each member that is ``fitted[kind]`` itself (the ensemble reuses
        its members' fits). None when a member is missing or another fit, so that the caller
        evaluates the mixture instead; the same numbers as the quantity's method."""
        if not all(fitted.get(m.kind) is m and m.kind in computed for m in self.members):
            return None
        return _combine([computed[m.kind] for m in self.members])

    def p_alive(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Mean of the members' P(alive)."""
        return self._mean("p_alive", frequency, recency, T)

    def expected_purchases(self, t: float, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Mean of the members' expected purchases in ``(T, T + t]``."""
        return self._mean("expected_purchases", t, frequency, recency, T)

    def p_no_purchase(self, t: float, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Mean of the members' probabilities of no purchase in ``(T, T + t]``."""
        return self._mean("p_no_purchase", t, frequency, recency, T)

    def purchase_pmf(
        self, t: float, frequency: Any, recency: Any, T: Any, k_max: int
    ) -> np.ndarray:
        """The mixture's predictive distribution: the mean of the members' PMFs."""
        return self._mean("purchase_pmf", t, frequency, recency, T, k_max)

    def expected_purchases_new(self, t: np.ndarray) -> np.ndarray:
        """Mean of the members' unconditional expected purchases."""
        return self._mean("expected_purchases_new", t)

    def to_dict(self) -> dict[str, Any]:
        """Return the model as JSON-compatible values (its members')."""
        return {
            "kind": ENSEMBLE,
            "time_unit": self.time_unit,
            "members": [m.to_dict() for m in self.members],
        }


def _combine(values: list[np.ndarray]) -> np.ndarray:
    """The equal-weight mixture of the members' values (one place, so that
    :meth:`EnsembleModel.mean_of` gives the quantity methods' numbers)."""
    return np.mean(values, axis=0)
