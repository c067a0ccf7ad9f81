"""BG/NBD (Fader, Hardie & Lee 2005): Poisson purchases while alive, a Beta-distributed chance
of dropping out after each purchase.

Its likelihood and scores are written once here for the whole beta-geometric family: MBG/NBD
(:mod:`clv.models.modified_beta_geo`) is the same model with a chance of dropping out at the
first purchase too, a ``modified`` flag in every function below. The likelihood is lifetimes'
(same conventions, tested to 1e-6 against its fits); what differs is the arithmetic: terms of
``x`` alone once per distinct ``x``, the analytic gradient for BFGS, and the scores in log space
or through transformed hypergeometric terms, finite for any history.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.special import digamma, expit, gammaln

from clv.models.base import (
    PurchaseProcess,
    alive_mixture,
    flat_histories,
    log_nb_coefficients,
    logaddexp,
)
from clv.models.patterns import Patterns


def bg_objective(
    log_params: np.ndarray, data: Patterns, penalizer: float, modified: bool
) -> tuple[float, np.ndarray]:
    """Mean negative log-likelihood of (M)BG/NBD and its gradient in log parameters."""
    theta = np.exp(log_params)
    r, alpha, a, b = theta
    shift = 1.0 if modified else 0.0
    ux, wx = data.by_x
    total = data.total
    # terms of x alone, once per distinct x
    ll = wx @ (
        gammaln(r + ux)
        - gammaln(r)
        + gammaln(a + b)
        + gammaln(b + ux + shift)
        - gammaln(b)
        - gammaln(a + b + ux + shift)
    ) + total * r * np.log(alpha)
    psi_ab = digamma(a + b)
    g_r = wx @ (digamma(r + ux) - digamma(r)) + total * np.log(alpha)
    g_alpha = total * r / alpha
    g_a = wx @ (psi_ab - digamma(a + b + ux + shift))
    g_b = wx @ (psi_ab + digamma(b + ux + shift) - digamma(b) - digamma(a + b + ux + shift))
    # per-pattern terms: log[(α+T)^-(r+x) + [x>0 for BG/NBD] a/(b+x-1+shift) (α+t_x)^-(r+x)]
    x, w = data.x, data.weight
    rx = r + x
    log_T = np.log(alpha + data.T)
    log_t = np.log(alpha + data.t_x)
    first = -rx * log_T
    if modified:
        denominator = b + x
        second = np.log(a) - np.log(denominator) - rx * log_t
    else:  # the second term exists for repeat buyers only
        repeat = data.repeat
        denominator = np.where(repeat, b + x - 1.0, 1.0)
        second = np.where(repeat, np.log(a) - np.log(denominator) - rx * log_t, -np.inf)
    both = logaddexp(first, second)
    p_second = np.exp(second - both)
    p_first = 1.0 - p_second
    ll += w @ both
    wp = w * p_second
    g_r += w @ (-p_first * log_T) - wp @ log_t
    g_alpha -= (w * rx) @ (p_first / (alpha + data.T)) + (wp * rx) @ (1.0 / (alpha + data.t_x))
    g_a += wp.sum() / a
    g_b -= wp @ (1.0 / denominator)
    grad = np.array([g_r, g_alpha, g_a, g_b])
    value = -ll / total + penalizer * float(theta @ theta)
    return value, theta * (-grad / total + 2.0 * penalizer * theta)


def bg_expected_purchases(
    params: dict[str, float],
    modified: bool,
    t: float,
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
) -> np.ndarray:
    """Conditional expected purchases of BG/NBD (FHL 2005, eq. 10) or MBG/NBD in ``(T, T + t]``.

    ``P(alive) · (c / (a − 1)) · [1 − ((α + T) / (α + T + t))^(r + x) · ₂F₁(r + x, b + x + m;
    c; z)]`` with ``c = a + b + x − 1 + m``, ``z = t / (α + T + t)``, ``m = 1`` for MBG/NBD.
    The Gauss hypergeometric term depends on ``(x, T)`` only and is evaluated on the grid of
    distinct ``x`` and ``T`` values when that is smaller than the input (at a million customers
    some ten thousand evaluations instead of a million). ₂F₁ is taken through Euler's
    transformation ``(1 − z)^(c − A − B) ₂F₁(c − A, c − B; c; z)``, with the power merged into
    the bracket's: its parameters ``c − A``, ``c − B`` do not grow with ``x``, so it stays finite
    and accurate (1e-13 against mpmath, where the direct form overflows from x ≈ 1,000 or
    loses 1e-8) for any history; the direct form is the fallback. Equal to lifetimes'
    ``conditional_expected_number_of_purchases_up_to_time`` where that is finite (tested).
    """
    from scipy.special import hyp2f1

    r, alpha, a, b = (params[k] for k in ("r", "alpha", "a", "b"))
    m = 1.0 if modified else 0.0
    x, t_x, T = np.broadcast_arrays(x, t_x, T)
    shape = x.shape
    x, t_x, T = x.ravel(), t_x.ravel(), T.ravel()
    x_codes, x_values = pd.factorize(x)
    T_codes, T_values = pd.factorize(T)
    if len(x_values) * len(T_values) <= len(x):  # the grid of distinct x and T is smaller
        kx, kT = np.repeat(x_values, len(T_values)), np.tile(T_values, len(x_values))
        index = x_codes * len(T_values) + T_codes
    else:
        kx, kT, index = x, T, slice(None)
    z = t / (alpha + kT + t)
    log_1mz = np.log(alpha + kT) - np.log(alpha + kT + t)
    A, B, c = r + kx, b + kx + m, a + b + kx - 1.0 + m
    with np.errstate(all="ignore"):
        euler = np.log(hyp2f1(c - A, c - B, c, z)) + (c - B) * log_1mz  # (c − A − B) + A
        direct = np.log(hyp2f1(A, B, c, z)) + A * log_1mz
        log_silent = np.where(np.isfinite(euler), euler, direct)
        bracket = (c / (a - 1.0)) * -np.expm1(log_silent)
    failed = ~np.isfinite(bracket)
    if failed.any():  # ₂F₁ out of reach (r or α in the millions): the integral it stands for
        bracket[failed] = [
            bg_bracket_by_quadrature(r + xi, alpha + Ti, a, b + xi + m, t)
            for xi, Ti in zip(np.broadcast_to(kx, z.shape)[failed], kT[failed], strict=True)
        ]
    with np.errstate(over="ignore"):
        alive = expit(-bg_log_odds_dead(params, modified, x, t_x, T))
    return (bracket[index] * alive).reshape(shape)


def bg_bracket_by_quadrature(r: float, alpha: float, a: float, b: float, t: float) -> float:
    """Expected purchases in the next ``t`` of a customer alive now, with purchase rate
    λ ~ Gamma(r, α) and dropout probability p ~ Beta(a, b) after the history:
    ``E_p[(1 − (α / (α + p t))^r) / p]``, the integral that the closed form's ₂F₁ sums. Written
    as ``g(0) + E_p[g(p) − g(0)]`` so that the integrand has no singularity at p = 0, and taken
    by adaptive quadrature; used only where the closed form is not finite."""
    from scipy.integrate import quad
    from scipy.special import betaln

    def g(p: float) -> float:
        return -np.expm1(-r * np.log1p(p * t / alpha)) / p if p > 0 else r * t / alpha

    g0, log_norm = r * t / alpha, betaln(a, b)

    def integrand(p: float) -> float:
        log_density = (a - 1.0) * np.log(p) + (b - 1.0) * np.log1p(-p) - log_norm
        return (g(p) - g0) * np.exp(log_density) if 0 < p < 1 else 0.0

    value, _ = quad(integrand, 0.0, 1.0, limit=200, points=[min(0.5, 10 / (a + b))])
    return float(g0 + value)


def bg_purchase_pmf(
    params: dict[str, float],
    modified: bool,
    t: float,
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    k_max: int,
) -> np.ndarray:
    """``P(X(t) = k | x, t_x, T)``, ``k = 0 … k_max``, of BG/NBD or MBG/NBD (1-D histories).

    A customer dead at ``T`` buys nothing. One alive at ``T`` has the posterior purchase rate
    λ ~ Gamma(r + x, α + T) and dropout probability p ~ Beta(a, b + x + m) (``m = 1`` for
    MBG/NBD), independent; then makes a ``j``-th purchase in the window when the Poisson
    process has ``j`` events by ``t`` and the customer survived the ``j − 1`` purchases before:
    ``P(X ≥ j) = P_alive · B(a, b + x + m + j − 1) / B(a, b + x + m) · I_w(j, r + x)`` with
    ``w = t / (α + T + t)`` (the tail of a negative binomial NB(r + x, w)). This is the
    conditional PMF of the Fader–Hardie note "Deriving the conditional PMF of the BG/NBD
    model", written as differences of tails whose factors are running products (ratios of beta
    functions, negative binomial probabilities in logs): finite for any history, a few
    multiplications per count, and its mean is :func:`bg_expected_purchases` (tested to 1e-8).
    Given alive, the table depends on ``(x, T)`` alone (:func:`~clv.models.base.alive_mixture`).
    """
    r, alpha, a, b = (params[k] for k in ("r", "alpha", "a", "b"))
    _, x, t_x, T = flat_histories(x, t_x, T)
    with np.errstate(over="ignore"):
        alive = expit(-bg_log_odds_dead(params, modified, x, t_x, T))
    step = np.arange(1.0, k_max + 1.0)[None, :]
    counts = np.arange(k_max + 1.0)[None, :]

    def if_alive(x: np.ndarray, T: np.ndarray) -> np.ndarray:
        # what depends on the frequency alone is computed once per distinct frequency
        distinct, which = np.unique(x, return_inverse=True)
        zero = np.zeros((len(distinct), 1))
        # survived[j − 1] = B(a, b' + j − 1) / B(a, b') = Π_{i < j − 1} (b' + i) / (a + b' + i)
        b_post = (b + distinct + (1.0 if modified else 0.0))[:, None]
        log_step = np.log(b_post + step - 1.0) - np.log(a + b_post + step - 1.0)
        survived = np.exp(np.concatenate([zero, np.cumsum(log_step, axis=1)], axis=1))[which]
        # NB(r + x, w) probabilities of 0 … k_max by their ratios, in logs (no underflow at
        # x ~ 1e4): log P(N = j) = log P(N = 0) + Σ_{i ≤ j} log((r + x + i − 1) / i) + j log w
        log_w = np.log(t) - np.log(alpha + T + t)
        log_none = -(r + x) * np.log1p(t / (alpha + T))
        log_coef = log_nb_coefficients(r + distinct, k_max)
        log_nb = log_none[:, None] + log_coef[which] + counts * log_w[:, None]
        at_least = np.clip(1.0 - np.cumsum(np.exp(log_nb), axis=1), 0.0, 1.0)  # P(N ≥ j)
        tail = survived * at_least  # P(X ≥ j | alive), j = 1 … k_max + 1
        tail = np.concatenate([np.ones((len(x), 1)), tail], axis=1)
        return np.maximum(tail[:, :-1] - tail[:, 1:], 0.0)

    return alive_mixture(alive, x, T, if_alive)


def bg_log_odds_dead(
    params: dict[str, float], modified: bool, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """``log((1 − P_alive) / P_alive)`` of BG/NBD: ``log(a / (b + x − 1)) + (r + x)
    log((α + T) / (α + t_x))``, alive (``-inf``) at x = 0 (FHL 2005, eq. 13); of MBG/NBD: the
    same with ``b + x`` and no exception at x = 0 (Batislam et al. 2007)."""
    r, alpha, a, b = (params[k] for k in ("r", "alpha", "a", "b"))
    shift = 0.0 if modified else 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = np.log(a / (b + x - shift)) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    return odds if modified else np.where(x > 0, odds, -np.inf)


class BetaGeo(PurchaseProcess):
    """BG/NBD: purchase rate λ ~ Gamma(r, α), dropout probability p ~ Beta(a, b)."""

    kind: ClassVar[str] = "bgnbd"
    name: ClassVar[str] = "BG/NBD"
    params: ClassVar[tuple[str, ...]] = ("r", "alpha", "a", "b")
    time_params: ClassVar[tuple[str, ...]] = ("alpha",)
    lifetimes_fitter: ClassVar[str] = "BetaGeoFitter"
    start: ClassVar[float] = 0.1
    gtol: ClassVar[float] = 1e-10
    analytic_gradient: ClassVar[bool] = True
    #: CLVTools' static covariates: α·e^(−γᵀz) (the purchase rate's mean × e^(γᵀz)); a and b
    #: both × e^(γᵀz) (the dropout probability's mean unchanged, its spread narrowed).
    covariate_links: ClassVar[dict[str, tuple[tuple[str, float], ...]]] = {
        "purchase": (("alpha", -1.0),),
        "dropout": (("a", 1.0), ("b", 1.0)),
    }
    #: MBG/NBD: a customer may also drop out at the first purchase.
    modified: ClassVar[bool] = False

    def objective(
        self, log_params: np.ndarray, data: Patterns, penalizer: float, prepared: Any
    ) -> tuple[float, np.ndarray]:
        return bg_objective(log_params, data, penalizer, self.modified)

    def log_likelihood(self, params: dict[str, float], data: Patterns) -> float:
        theta = np.array([params[n] for n in self.params], dtype=float)
        value, _ = bg_objective(np.log(theta), data, 0.0, self.modified)
        return -value * data.total

    def log_odds_dead(
        self, params: dict[str, float], x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        return bg_log_odds_dead(params, self.modified, x, t_x, T)

    def expected_purchases(
        self, params: dict[str, float], t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        return bg_expected_purchases(params, self.modified, t, x, t_x, T)

    def p_no_purchase(
        self, params: dict[str, float], t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        """``(1 − P_alive) + P_alive · ((α + T) / (α + T + t))^(r + x)`` (DOMAIN.md §2; given
        activity, the purchase rate's posterior is Gamma(r + x, α + T))."""
        r, alpha = params["r"], params["alpha"]
        with np.errstate(over="ignore"):
            alive = np.clip(expit(-self.log_odds_dead(params, x, t_x, T)), 0.0, 1.0)
        silent_if_alive = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t)))
        return np.clip((1.0 - alive) + alive * silent_if_alive, 0.0, 1.0)

    def purchase_pmf(
        self,
        params: dict[str, float],
        t: float,
        x: np.ndarray,
        t_x: np.ndarray,
        T: np.ndarray,
        k_max: int,
    ) -> np.ndarray:
        return bg_purchase_pmf(params, self.modified, t, x, t_x, T, k_max)
