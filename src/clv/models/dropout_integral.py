"""The likelihood's integral over the time of dropout between the last purchase and the end of
the observation, by quadrature, with the nodes its gradient needs.

A customer with ``x`` purchases, the last at ``t_x``, observed to ``T``, who dropped out at
``τ ∈ (t_x, T]`` contributes ``∫ f(τ) (α + τ)^(−(r + x)) dτ`` (after the Gamma purchase rate
is integrated out; ``f`` is the dropout density). Both factors fall like powers of ``τ`` plus
an offset: ``α`` for the purchase factor, and for the density its own scale (Pareto/NBD's
``β``; GG/NBD's ``β / b`` near the start of life). In ``y = log((m + τ) / (m + t_x))``, with
``m`` the smaller offset, both are smooth and a 32-node Gauss–Legendre rule integrates their
product to ~1e-12 (tested against adaptive quadrature and Pareto/NBD's closed form, from
``β / α = 1e-4`` to ``1e4``). The interval is cut where ``(α + τ)^(−(r + x − 1))`` has fallen
by ``e^(−40)`` (a heavy buyer's falls by hundreds of orders of magnitude over the interval).
GG/NBD's likelihood is this integral (it has no closed form); Pareto/NBD takes its gradient from
it (its value has one, in Gauss' hypergeometric function).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Gauss–Legendre rule on (0, 1).
NODES, WEIGHTS = (lambda n, w: ((n + 1.0) / 2.0, w / 2.0))(*np.polynomial.legendre.leggauss(32))

#: Where the integral is cut: its integrand has fallen by ``e^(−CUT)``.
CUT = 40.0


@dataclass(frozen=True)
class DropoutIntegral:
    """The integral's log per history, and its nodes: ``τ``, ``log(α + τ)``, ``log(offset +
    τ)`` and each node's share of the integral (the weights of :meth:`mean`)."""

    log_value: np.ndarray
    tau: np.ndarray
    log_rate_base: np.ndarray
    log_offset_base: np.ndarray
    share: np.ndarray
    alpha: float

    def mean(self, values: np.ndarray) -> np.ndarray:
        """``values`` at the nodes averaged by their shares: the derivative of the integral's
        log is the mean of the integrand's log-derivative."""
        return np.einsum("ij,ij->i", self.share, values)

    def rate_gradient(self, rx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The derivatives of the integral's log in ``r`` and ``α`` (through
        ``(α + τ)^(−(r + x))``, the same for every dropout density)."""
        return -self.mean(self.log_rate_base), -rx * self.mean(1.0 / (self.alpha + self.tau))


def dropout_integral(
    alpha: float,
    rx: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    log_density: Callable[[np.ndarray, np.ndarray], np.ndarray],
    offset: float,
) -> DropoutIntegral:
    """``log ∫_{t_x}^{T} f(τ) (α + τ)^(−(r + x)) dτ`` per history, ``rx = r + x``, with
    ``log_density(τ, log(offset + τ)) = log f(τ)`` at the nodes (shape ``(histories,
    nodes)``) and ``offset`` the density's scale (the rule runs in ``log(min(α, offset) +
    τ)``)."""
    c = rx - 1.0
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        # the end: T, or where the purchase factor has fallen by e^(−CUT)
        reach = np.log(alpha + t_x) + np.where(c > 0, CUT / np.where(c > 0, c, 1.0), np.inf)
        end = np.where(reach < np.log(alpha + T), np.exp(reach) - alpha, T)
        start = min(alpha, offset) + t_x
        span = np.log1p((end - t_x) / start)
        y = NODES * span[:, None]
        tau = start[:, None] * np.expm1(y) + t_x[:, None]
        log_rate_base = np.log(alpha + tau)
        log_offset_base = np.log(offset + tau)
        log_node = (
            np.log(WEIGHTS)
            + log_density(tau, log_offset_base)
            - rx[:, None] * log_rate_base
            + (log_rate_base if alpha <= offset else log_offset_base)
        )
        top = log_node.max(axis=1)
        node = np.exp(log_node - top[:, None])
        total = node.sum(axis=1)
        log_value = np.log(span) + top + np.log(total)
    share = node / total[:, None]
    return DropoutIntegral(log_value, tau, log_rate_base, log_offset_base, share, alpha)
