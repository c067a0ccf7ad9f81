"""Mixtures of fitted purchase models: the ``ensemble`` candidate (equal weights) and the
``stacked`` one (weights that maximise the holdout log score, :func:`stack_weights`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from clv.models.fitted import PurchaseModel
from clv.models.registry import ENSEMBLE, STACKED


@dataclass(frozen=True)
class EnsembleModel:
    """A mixture of fitted purchase models: the ``ensemble`` and ``stacked`` candidates.

    Each score quantity is the mixture's — the members' P(alive), expected purchases,
    P(no purchase) and predictive PMF averaged with :attr:`weights` — so it is scored by the
    same code as any model (local, pyfunc, Spark) and saved as its members' parameters and the
    weights. Averaging forecasts of different models is a cheap hedge against picking the wrong
    one on a noisy holdout (``ensemble``, equal weights); stacking (Yao, Vehtari, Simpson &
    Gelman 2018) leans toward the members the holdout favours (``stacked``). Either is a
    candidate, chosen only when it scores best.
    """

    members: tuple[PurchaseModel, ...]
    kind: str = ENSEMBLE
    log_likelihood: float = float("nan")
    penalizer: float = 0.0
    #: The members' shares of the mixture (non-negative, summing to 1); equal when not given.
    weights: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not self.weights:
            object.__setattr__(self, "weights", (1.0 / len(self.members),) * len(self.members))
        w = np.asarray(self.weights, dtype=float)
        if len(w) != len(self.members) or np.any(w < 0) or not np.isclose(w.sum(), 1.0):
            raise ValueError(
                f"mixture weights must be {len(self.members)} non-negative numbers summing to 1, "
                f"got {list(self.weights)}"
            )

    @property
    def name(self) -> str:
        """Display name (a stacked mixture's with each member's weight)."""
        if self.kind == STACKED:
            parts = (f"{w:.2f} {m.name}" for m, w in zip(self.members, self.weights, strict=True))
            return f"Stacked ({' + '.join(parts)})"
        return f"Ensemble ({' + '.join(m.name for m in self.members)})"

    @property
    def time_unit(self) -> str:
        """Unit of recency, T and t (the members')."""
        return self.members[0].time_unit

    @property
    def params(self) -> dict[str, float]:
        """The members' parameters as ``kind.name`` (for printing and logging), and a stacked
        mixture's weights as ``kind.weight``."""
        out = {f"{m.kind}.{k}": v for m in self.members for k, v in m.params.items()}
        if self.kind == STACKED:
            out |= {f"{m.kind}.weight": w for m, w in zip(self.members, self.weights, strict=True)}
        return out

    @property
    def standard_errors(self) -> dict[str, float]:
        """The members' standard errors as ``kind.name`` (like :attr:`params`)."""
        return {f"{m.kind}.{k}": v for m in self.members for k, v in m.standard_errors.items()}

    def _mean(self, method: str, *args: Any) -> np.ndarray:
        return combine([getattr(m, method)(*args) for m in self.members], self.weights)

    def mean_of(
        self, fitted: Mapping[str, Any], computed: Mapping[str, np.ndarray]
    ) -> np.ndarray | None:
        """The mixture's value of a quantity from its members' values for the same customers:
        ``computed[kind]`` of each member that is ``fitted[kind]`` itself (the ensemble reuses
        its members' fits). None when a member is missing or another fit, so that the caller
        evaluates the mixture instead; the same numbers as the quantity's method."""
        if not all(fitted.get(m.kind) is m and m.kind in computed for m in self.members):
            return None
        return combine([computed[m.kind] for m in self.members], self.weights)

    def p_alive(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Weighted mean of the members' P(alive)."""
        return self._mean("p_alive", frequency, recency, T)

    def expected_purchases(self, t: float, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Weighted mean of the members' expected purchases in ``(T, T + t]``."""
        return self._mean("expected_purchases", t, frequency, recency, T)

    def p_no_purchase(self, t: float, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Weighted mean of the members' probabilities of no purchase in ``(T, T + t]``."""
        return self._mean("p_no_purchase", t, frequency, recency, T)

    def purchase_pmf(
        self, t: float, frequency: Any, recency: Any, T: Any, k_max: int
    ) -> np.ndarray:
        """The mixture's predictive distribution: the weighted mean of the members' PMFs."""
        return self._mean("purchase_pmf", t, frequency, recency, T, k_max)

    def expected_purchases_new(self, t: np.ndarray) -> np.ndarray:
        """Weighted mean of the members' unconditional expected purchases."""
        return self._mean("expected_purchases_new", t)

    def to_dict(self) -> dict[str, Any]:
        """Return the model as JSON-compatible values (its members')."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "time_unit": self.time_unit,
            "members": [m.to_dict() for m in self.members],
        }
        if self.kind == STACKED:
            out["weights"] = [float(w) for w in self.weights]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnsembleModel:
        """Rebuild a mixture from :meth:`to_dict` (members, and a stacked one's weights)."""
        members = tuple(PurchaseModel.from_dict(m) for m in data["members"])
        if not members:
            raise ValueError(f"the {data['kind']} mixture has no members")
        return cls(members, kind=data["kind"], weights=tuple(data.get("weights", ())))


def combine(values: list[np.ndarray], weights: tuple[float, ...]) -> np.ndarray:
    """The weighted mixture of the members' values: one place, so that
    :meth:`EnsembleModel.mean_of` and the evaluation's mixes of computed forecasts give the
    quantity methods' numbers."""
    if len(set(weights)) == 1:  # equal weights: the plain mean, as before weights existed
        return np.mean(values, axis=0)
    return np.tensordot(np.asarray(weights), np.asarray(values), axes=1)


def stack_weights(densities: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
    """Simplex weights that maximise the log score of a mixture of predictive distributions.

    Stacking of predictive distributions (Yao, Vehtari, Simpson & Gelman 2018, *Using stacking
    to average Bayesian predictive distributions*, Bayesian Analysis 13(3)): with
    ``densities[i, m]`` the probability model ``m`` gave to what customer ``i`` did in a
    holdout it never saw, the weights maximise ``Σ_i counts_i log Σ_m w_m densities[i, m]`` over
    ``w ≥ 0, Σ w = 1``. The objective is concave, so the constrained optimum (SLSQP with the
    analytic gradient, from equal weights) is the global one; weights at the edge are exact
    zeros, where the EM fixed point would only creep toward them. Each model alone is checked
    too: on a nearly flat objective the optimiser may stop a hair short of a vertex.

    Parameters
    ----------
    densities : numpy.ndarray
        Customers (or patterns) × models: each model's predictive probability of the observed
        holdout count.
    counts : numpy.ndarray, optional
        How many customers each row stands for (1 each when not given).

    Returns
    -------
    numpy.ndarray
        One weight per model, non-negative, summing to 1.

    Examples
    --------
    A model that gives every outcome more probability takes all the weight:

    >>> stack_weights(np.array([[0.5, 0.1], [0.4, 0.2]])).round(3).tolist()
    [1.0, 0.0]

    Two models each right about half the customers share it:

    >>> stack_weights(np.array([[0.9, 0.1], [0.1, 0.9]])).round(3).tolist()
    [0.5, 0.5]
    """
    from scipy.optimize import minimize

    d = np.maximum(np.asarray(densities, dtype=float), 1e-300)
    n = np.ones(len(d)) if counts is None else np.asarray(counts, dtype=float)
    n = n / n.sum()
    models = d.shape[1]
    if models == 1:
        return np.ones(1)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        mixture = np.maximum(d @ w, 1e-300)
        return -float(n @ np.log(mixture)), -((n / mixture) @ d)

    result = minimize(
        loss,
        np.full(models, 1.0 / models),
        jac=True,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * models,
        constraints=(
            {"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)},
        ),
        options={"ftol": 1e-12, "maxiter": 500},
    )
    w = np.clip(result.x, 0.0, None)
    w /= w.sum()
    # on a nearly flat objective SLSQP can stop a hair short of a vertex: keep the best of its
    # answer and each model alone, so the mixture is never worse than a member
    best = min([w, *np.eye(models)], key=lambda v: loss(v)[0])
    return np.asarray(best, dtype=float)
