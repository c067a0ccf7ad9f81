"""A fitted purchase model: a registered model's name, its parameters and its time unit.

:class:`PurchaseModel` is plain data (saved as JSON, never pickled) whose score methods take
arrays of customers and hand them to the model's mathematics
(:class:`~clv.models.base.PurchaseProcess`) — so scoring code never asks which model it holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
from scipy.special import expit

from clv.models.base import PurchaseProcess, flat_histories
from clv.models.optimize import saved_covariance
from clv.models.patterns import distinct_histories
from clv.models.registry import purchase_process

#: The no-heterogeneity edges of a fit (:attr:`PurchaseModel.homogeneous`), in words.
HOMOGENEOUS_NAMES = {
    "rate": "no-rate-heterogeneity (Poisson)",
    "dropout": "homogeneous-dropout",
    "no_dropout": "no-dropout",
}
HOMOGENEOUS_MEANING = {
    "rate": "every customer buys at the same rate while alive (r, α → ∞ with r/α fixed)",
    "dropout": "every customer has the same dropout (the dropout mixture's two shapes → ∞ "
    "with their ratio fixed)",
    "no_dropout": "no customer drops out (the dropout probability's mixture has its mass at 0: "
    "a → 0, shipped at a = 1e-6)",
}


@dataclass(frozen=True)
class PurchaseModel:
    """A fitted BTYD purchase model.

    Parameters
    ----------
    kind : str
        Config name of the model (:data:`clv.models.registry.PURCHASE_MODELS`).
    params : dict
        The model's parameters (e.g. ``r, alpha, a, b`` of BG/NBD), time in ``time_unit``.
    time_unit : str
        Unit of ``recency``, ``T`` and ``t`` in every method.
    log_likelihood : float
        Log-likelihood of the fitting data at ``params`` (without the penalty).
    penalizer : float
        L2 penalizer of the fit that was kept.
    standard_errors : dict
        Standard errors of the parameters (inverse Hessian of the log-likelihood; empty when
        it is not positive definite).
    covariance : tuple
        Covariance of the log parameters in ``process.params`` order (the inverse observed
        information; empty when unknown): the Laplace approximation that the forecast ranges
        draw parameter uncertainty from (:mod:`clv.intervals`).
    limit_of : str, optional
        The model with dropout whose fit ran to its no-dropout edge, when this is its limit
        (``kind`` is then ``nbd``, :mod:`clv.models.nbd`); None for a model fitted as itself.
    homogeneous : tuple of str
        The mixing distributions whose fit ran to a point mass (``rate``: r, α → ∞ with r/α
        fixed, the Poisson limit; ``dropout``: a, b or s, β → ∞ with their ratio fixed, every
        customer the same dropout; ``no_dropout``: MBG/CNBD-k's a → 0, nobody leaves): the
        likelihood's supremum lies beyond any finite value and the fit stopped where it no
        longer changes (:func:`clv.models.limits.homogeneous_limit`).
    """

    kind: str
    params: dict[str, float]
    time_unit: str
    log_likelihood: float = float("nan")
    penalizer: float = 0.0
    standard_errors: dict[str, float] = field(default_factory=dict)
    covariance: tuple[tuple[float, ...], ...] = ()
    limit_of: str | None = None
    homogeneous: tuple[str, ...] = ()

    @cached_property
    def process(self) -> PurchaseProcess:
        """The model's mathematics (:data:`clv.models.registry.PURCHASE_MODELS`)."""
        return purchase_process(self.kind)

    @property
    def name(self) -> str:
        """Display name, e.g. ``BG/NBD``, or ``Pareto/NBD at its no-dropout limit (NBD)``."""
        if self.limit_of:
            return f"{purchase_process(self.limit_of).name} at its no-dropout limit (NBD)"
        if self.homogeneous:
            what = " and ".join(HOMOGENEOUS_NAMES[h] for h in self.homogeneous)
            return f"{self.process.name} at its {what} limit"
        return self.process.name

    @property
    def at_edge(self) -> bool:
        """Whether the fit is at an edge of the model's space: its no-dropout limit, or a
        mixing distribution run to a point mass."""
        return bool(self.limit_of or self.homogeneous)

    @property
    def limit_note(self) -> str | None:
        """What a boundary fit means, in words, or None for a model fitted as itself."""
        if self.homogeneous:
            said = "; ".join(HOMOGENEOUS_MEANING[h] for h in self.homogeneous)
            return f"{self.name}: {said}. The scores are the model's at that edge."
        if not self.limit_of:
            return None
        return (
            f"{purchase_process(self.limit_of).name} at its no-dropout limit: this log shows no "
            "customer leaving, so it is scored as the NBD without dropout (P(alive) = 1)."
        )

    def expected_purchases_new(self, t: np.ndarray) -> np.ndarray:
        """Expected repeat purchases in ``(0, t]`` of a customer acquired at 0 (unconditional)."""
        return self.process.expected_purchases_new(self.params, np.asarray(t, dtype=float))

    def p_alive(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Probability that each customer is still active at ``T``.

        Evaluated in log space (:func:`_log_odds_dead`), so it is finite for any history.
        """
        x, t_x, T_ = _arrays(frequency, recency, T)
        with np.errstate(over="ignore"):
            return np.clip(expit(-self._log_odds_dead(x, t_x, T_)), 0.0, 1.0)

    def _log_odds_dead(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """``log((1 − P_alive) / P_alive)`` (``-inf`` where a customer must be alive)."""
        return self._each_history(lambda *h: self.process.log_odds_dead(self.params, *h), x, t_x, T)

    def _each_history(
        self,
        score: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
        x: np.ndarray,
        t_x: np.ndarray,
        T: np.ndarray,
    ) -> np.ndarray:
        """``score(x, t_x, T)``, which returns one value (or row) per history of the broadcast
        histories; where :meth:`~clv.models.base.PurchaseProcess.costly_scores`,
        taken once per distinct history and spread back (1M simulated customers have 149k:
        GG/NBD's P(alive) of them took 1.5 s instead of 9.8 s)."""
        if not self.process.costly_scores(self.params):
            return score(x, t_x, T)
        shape, *flat = flat_histories(x, t_x, T)
        which, *distinct = distinct_histories(*flat)
        if len(distinct[0]) == len(which) or (which < 0).any():  # nothing repeats; or NaN
            return score(x, t_x, T)
        values = score(*distinct)
        return values.reshape(len(distinct[0]), -1)[which].reshape(shape + values.shape[1:])

    def expected_purchases(self, t: float, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Expected number of purchases in ``(T, T + t]`` for each customer."""
        if t <= 0:
            return np.zeros(np.shape(frequency), dtype=float)
        x, t_x, T_ = _arrays(frequency, recency, T)
        return self._each_history(
            lambda *h: self.process.expected_purchases(self.params, t, *h), x, t_x, T_
        )

    def p_no_purchase(self, t: float, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Probability of no purchase in ``(T, T + t]`` (see each model's ``p_no_purchase``)."""
        x, t_x, T_ = _arrays(frequency, recency, T)
        if t <= 0:
            return np.ones(np.broadcast(x, t_x, T_).shape, dtype=float)
        return self._each_history(
            lambda *h: self.process.p_no_purchase(self.params, t, *h), x, t_x, T_
        )

    def purchase_pmf(
        self, t: float, frequency: Any, recency: Any, T: Any, k_max: int
    ) -> np.ndarray:
        """``P(X(t) = k | history)`` for ``k = 0 … k_max``: one row per customer (see each
        model's ``purchase_pmf``); ``t ≤ 0`` puts all mass on 0."""
        x, t_x, T_ = (np.ravel(v) for v in _arrays(frequency, recency, T))
        if t <= 0:
            pmf = np.zeros((len(x), k_max + 1))
            pmf[:, 0] = 1.0
            return pmf
        return self._each_history(
            lambda *h: self.process.purchase_pmf(self.params, t, *h, k_max), x, t_x, T_
        )

    @property
    def log_params(self) -> np.ndarray:
        """The parameters' logs in ``process.params`` order (the covariance's scale)."""
        return np.log([self.params[n] for n in self.process.params])

    def with_log_params(self, log_params: np.ndarray) -> PurchaseModel:
        """The same model at other (log) parameters, e.g. a draw from :attr:`covariance`."""
        values = np.exp(np.asarray(log_params, dtype=float)).tolist()
        return replace(self, params=dict(zip(self.process.params, values, strict=True)))

    def to_dict(self) -> dict[str, Any]:
        """Return the model as JSON-compatible values."""
        return (
            {
                "kind": self.kind,
                "params": {k: float(v) for k, v in self.params.items()},
                "time_unit": self.time_unit,
                "log_likelihood": float(self.log_likelihood),
                "penalizer": float(self.penalizer),
                "standard_errors": {k: float(v) for k, v in self.standard_errors.items()},
                "covariance": [[float(v) for v in row] for row in self.covariance],
            }
            | ({"limit_of": self.limit_of} if self.limit_of else {})
            | ({"homogeneous": list(self.homogeneous)} if self.homogeneous else {})
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PurchaseModel:
        """Rebuild a model from :meth:`to_dict` output; checks kind and parameter names."""
        kind = data["kind"]
        process = purchase_process(kind)
        params = {n: float(data["params"][n]) for n in process.params}
        bounds = process.bounds
        if not all(np.isfinite(v) and bounds[n][0] < v < bounds[n][1] for n, v in params.items()):
            raise ValueError(
                f"parameters of {kind} must be finite and within their bounds "
                f"({_describe(bounds)}): {params}"
            )
        return cls(
            kind=kind,
            params=params,
            time_unit=data["time_unit"],
            log_likelihood=float(data.get("log_likelihood", float("nan"))),
            penalizer=float(data.get("penalizer", 0.0)),
            standard_errors={k: float(v) for k, v in data.get("standard_errors", {}).items()},
            covariance=saved_covariance(data.get("covariance", ()), len(process.params)),
            limit_of=purchase_process(data["limit_of"]).kind if data.get("limit_of") else None,
            homogeneous=tuple(h for h in data.get("homogeneous", ()) if h in HOMOGENEOUS_NAMES),
        )


def _arrays(frequency: Any, recency: Any, T: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.asarray(frequency, dtype=float),
        np.asarray(recency, dtype=float),
        np.asarray(T, dtype=float),
    )


def _describe(bounds: dict[str, tuple[float, float]]) -> str:
    """``positive and finite`` when every bound is (0, ∞), else each parameter's interval."""
    if all(b == (0.0, np.inf) for b in bounds.values()):
        return "positive and finite"
    return ", ".join(f"{n} in ({low:g}, {high:g})" for n, (low, high) in bounds.items())
