"""NBD: the purchase model without dropout, the limit every BTYD model reaches when a log shows
no customer leaving.

Purchases are Poisson with rate λ ~ Gamma(r, α) for ever (Ehrenberg's NBD). It is the edge of the
parameter space of each model with dropout: BG/NBD and MBG/NBD as the dropout probability's mean
a / (a + b) → 0, Pareto/NBD and Gamma-Gompertz/NBD as the dropout rate's mean s / β → 0. When a
maximum-likelihood fit runs to that edge (loyal customers, a log shorter than a lifetime), the
limit is the answer, and its closed forms give every score (DOMAIN.md §3, "Limits of the
models"):

- P(alive) = 1;
- the posterior of λ after ``x`` purchases in ``T`` is Gamma(r + x, α + T), so purchases in the
  next ``t`` are negative binomial with size ``r + x`` and probability ``(α + T)/(α + T + t)``:
  mean ``(r + x)·t/(α + T)``, P(none) ``((α + T)/(α + T + t))^(r + x)``;
- a newcomer's expected repeat purchases in ``(0, t]`` are ``r·t/α``.

The likelihood of a history is ``Γ(r + x)/Γ(r) · α^r / (α + T)^(r + x)`` (the purchase times
beyond their count carry no information on λ), so ``t_x`` does not enter.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy.special import digamma, gammaln

from clv.models.base import PurchaseProcess, flat_histories, log_nb_coefficients
from clv.models.patterns import Patterns


class NBD(PurchaseProcess):
    """NBD without dropout: purchase rate λ ~ Gamma(r, α), every customer alive for ever."""

    kind: ClassVar[str] = "nbd"
    name: ClassVar[str] = "NBD (no dropout)"
    params: ClassVar[tuple[str, ...]] = ("r", "alpha")
    time_params: ClassVar[tuple[str, ...]] = ("alpha",)
    start: ClassVar[float] = 0.0
    gtol: ClassVar[float] = 1e-10
    analytic_gradient: ClassVar[bool] = True

    def objective(
        self, log_params: np.ndarray, data: Patterns, penalizer: float, prepared: Any
    ) -> tuple[float, np.ndarray]:
        theta = np.exp(log_params)
        r, alpha = theta
        ux, wx = data.by_x
        total = data.total
        log_total = np.log(alpha + data.T)
        w = data.weight
        ll = wx @ (gammaln(r + ux) - gammaln(r)) + total * r * np.log(alpha)
        ll -= (w * (r + data.x)) @ log_total
        g_r = wx @ (digamma(r + ux) - digamma(r)) + total * np.log(alpha) - w @ log_total
        g_alpha = total * r / alpha - (w * (r + data.x)) @ (1.0 / (alpha + data.T))
        grad = np.array([g_r, g_alpha])
        value = -ll / total + penalizer * float(theta @ theta)
        return value, theta * (-grad / total + 2.0 * penalizer * theta)

    def log_likelihood(self, params: dict[str, float], data: Patterns) -> float:
        theta = np.array([params[n] for n in self.params], dtype=float)
        value, _ = self.objective(np.log(theta), data, 0.0, None)
        return -value * data.total

    def log_odds_dead(
        self, params: dict[str, float], x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        """Nobody leaves: ``-inf`` (P(alive) = 1) for every history."""
        return np.full(np.broadcast(x, t_x, T).shape, -np.inf)

    def expected_purchases(
        self, params: dict[str, float], t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        """``(r + x)·t / (α + T)``."""
        r, alpha = params["r"], params["alpha"]
        x, t_x, T = np.broadcast_arrays(x, t_x, T)
        return (r + x) * t / (alpha + T)

    def p_no_purchase(
        self, params: dict[str, float], t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        """``((α + T)/(α + T + t))^(r + x)``."""
        r, alpha = params["r"], params["alpha"]
        x, t_x, T = np.broadcast_arrays(x, t_x, T)
        return np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t)))

    def expected_purchases_new(self, params: dict[str, float], t: np.ndarray) -> np.ndarray:
        """``r·t / α``."""
        return params["r"] * np.asarray(t, dtype=float) / params["alpha"]

    def purchase_pmf(
        self,
        params: dict[str, float],
        t: float,
        x: np.ndarray,
        t_x: np.ndarray,
        T: np.ndarray,
        k_max: int,
    ) -> np.ndarray:
        """Negative binomial: size ``r + x``, probability ``(α + T)/(α + T + t)``."""
        r, alpha = params["r"], params["alpha"]
        _, x, t_x, T = flat_histories(x, t_x, T)
        k = np.arange(k_max + 1.0)
        log_p = -np.log1p(t / (alpha + T))  # exact at the Poisson limit's α ~ 1e8
        log_q = np.log(t) - np.log(alpha + T + t)
        log_pmf = (
            log_nb_coefficients(r + x, k_max) + ((r + x) * log_p)[:, None] + k * log_q[:, None]
        )
        return np.exp(log_pmf)
