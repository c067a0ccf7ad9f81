"""Gamma-Gompertz/NBD (Bemmaor & Glady 2012): Poisson purchases while alive, a lifetime whose
hazard grows (or shrinks) with age, both heterogeneous across customers.

A customer buys at rate λ ~ Gamma(r, α) and dies at a Gompertz time with hazard ``b·η·e^(b·t)``,
η ~ Gamma(s, β); across customers the survival is ``S(t) = (β / (β + e^(b·t) − 1))^s``. As
``b → 0`` with ``β / b`` fixed the hazard is constant and the model is Pareto/NBD (``s`` and
Pareto's ``β = β / b``): on logs such as CDNOW the fit runs along that ridge and its likelihood
is Pareto/NBD's (Bemmaor & Glady 2012, Table 2; CLVTools' ``ggomnbd`` tests).

The likelihood of a history ``(x, t_x, T)`` is

    Γ(r + x) α^r / Γ(r) · [S(T) / (α + T)^(r + x) + ∫_{t_x}^{T} f(τ) / (α + τ)^(r + x) dτ]

with ``f = −S'`` the dropout density. The integral has no closed form; it is taken by a
32-node Gauss–Legendre rule (:mod:`clv.models.dropout_integral`), equal to adaptive quadrature
to ~1e-13. Its gradient is the same rule applied to the integrand's derivatives: BFGS gets it
analytically. The fit goes through the Pareto/NBD limit (:meth:`GammaGompertzNBD.fit`).

Given alive at ``T``, the remaining lifetime has survival ``(β_T / (β_T + e^(b·T)(e^(b·u) −
1)))^s`` with ``β_T = β + e^(b·T) − 1``, whatever the purchases; in ``y = −log`` of it over
``s`` its density is ``s·e^(−s·y)``, which a 32-node rule integrates to rounding. Every score
(expected purchases, P(no purchase), the predictive PMF) is a mixture over that exposure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.special import digamma, expit, gammaln

from clv.models.base import (
    Fit,
    PurchaseProcess,
    alive_mixture,
    fit_patterns,
    flat_histories,
    logaddexp,
    nb_exposure_mixture,
)
from clv.models.dropout_integral import NODES, WEIGHTS, dropout_integral
from clv.models.pareto_nbd import ParetoNBD
from clv.models.patterns import Patterns

#: GG/NBD with ``b·T`` (T the longest age) below this is at its Pareto/NBD limit, the ridge a
#: fit from the default start crawls along for seconds (7 s on full CDNOW, where it ends there).
_AT_LIMIT = 1e-6
#: The limit's slope in ``b`` is read between these ``b·T`` (GG/NBD's likelihood against itself,
#: so the two models' different numerics never enter), the limit shipped at the third, and a
#: climb off it starts at the fourth.
_SLOPE_AT, _LIMIT_POINT, _CLIMB_FROM = (1e-4, 1e-3), 1e-10, 1e-2

#: Below this ``b`` × the longest time a score reaches, GG/NBD's scores are its Pareto/NBD
#: limit's to ~5e-9 (``e^(bτ) − 1 = bτ·(1 + bτ/2 + …)``) and are taken by Pareto/NBD's closed
#: forms, in a quarter of the quadrature's time: where its fit is the limit, shipped at
#: ``b·T = 1e-10``.
_SCORES_AT_LIMIT = 1e-8

#: Above this ``b·τ``, ``log(β + e^(bτ) − 1)`` is taken as ``bτ + log1p((β − 1)e^(−bτ))``.
_LARGE = 30.0


def _log_base(beta: float, b: float, tau: np.ndarray) -> np.ndarray:
    """``G(τ) = log(β + e^(b·τ) − 1)`` without overflow or cancellation (β > 0, τ ≥ 0)."""
    return _base(beta, b, tau)[0]


def _base(beta: float, b: float, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``G(τ)``, ``e^(−G(τ))`` and ``e^(b·τ − G(τ))`` (the share of ``e^(bτ)`` in the base)."""
    bt = b * tau
    if bt.size == 0 or bt.max() <= _LARGE:  # the usual case: no overflow possible
        base = beta + np.expm1(bt)
        inverse = 1.0 / base
        return np.log(base), inverse, 1.0 + (1.0 - beta) * inverse
    large = np.maximum(bt, _LARGE)
    tail = (beta - 1.0) * np.exp(-large)
    g = np.where(
        bt <= _LARGE, np.log(beta + np.expm1(np.minimum(bt, _LARGE))), large + np.log1p(tail)
    )
    return g, np.exp(-g), np.exp(bt - g)


@dataclass(frozen=True)
class _Terms:
    """The log-likelihood of each pattern and, when asked, its gradient in the parameters."""

    log_likelihood: np.ndarray
    gradient: np.ndarray | None  # (patterns, 5): ∂/∂(r, α, b, s, β)
    log_odds_dead: np.ndarray


def _terms(theta: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, grad: bool) -> _Terms:
    """Log-likelihood of each history (and its gradient) under GG/NBD at ``theta``."""
    r, alpha, b, s, beta = theta
    rx = r + x
    log_beta = np.log(beta)
    # the history's "alive at T" term: S(T) / (α + T)^(r + x)
    g_T, inverse_T, ratio_T = _base(beta, b, T)
    log_aT = np.log(alpha + T)
    log_alive = s * (log_beta - g_T) - rx * log_aT
    # the dropout term ∫ f(τ) (α + τ)^(−(r+x)) dτ over (t_x, T] (clv.models.dropout_integral)
    at_nodes = {}

    def log_f(tau: np.ndarray, _: np.ndarray) -> np.ndarray:
        at_nodes["g"], at_nodes["inverse"], at_nodes["ratio"] = _base(beta, b, tau)
        return (np.log(b) + np.log(s) + s * log_beta) + b * tau - (s + 1.0) * at_nodes["g"]

    integral = dropout_integral(alpha, rx, t_x, T, log_f, beta / b)
    log_dropout = integral.log_value
    log_bracket = logaddexp(log_alive, log_dropout)
    k = gammaln(rx) - gammaln(r) + r * np.log(alpha)
    log_odds_dead = log_dropout - log_alive
    if not grad:
        return _Terms(k + log_bracket, None, log_odds_dead)
    p_alive = np.exp(log_alive - log_bracket)
    alive_part = np.stack(
        [-log_aT, -rx / (alpha + T), -s * T * ratio_T, log_beta - g_T, s / beta - s * inverse_T],
        axis=1,
    )
    mean, tau = integral.mean, integral.tau
    dropout_part = np.stack(
        [
            *integral.rate_gradient(rx),
            1.0 / b + mean(tau * (1.0 - (s + 1.0) * at_nodes["ratio"])),
            1.0 / s + log_beta - mean(at_nodes["g"]),
            s / beta - (s + 1.0) * mean(at_nodes["inverse"]),
        ],
        axis=1,
    )
    gradient = p_alive[:, None] * alive_part + (1.0 - p_alive)[:, None] * dropout_part
    gradient[:, 0] += digamma(rx) - digamma(r) + np.log(alpha)
    gradient[:, 1] += r / alpha
    return _Terms(k + log_bracket, gradient, log_odds_dead)


def _objective(
    log_params: np.ndarray, data: Patterns, penalizer: float
) -> tuple[float, np.ndarray]:
    """Mean negative log-likelihood plus ``penalizer · Σ θ²`` and its gradient in log θ."""
    theta = np.exp(log_params)
    with np.errstate(over="ignore", invalid="ignore"):
        terms = _terms(theta, data.x, data.t_x, data.T, grad=True)
    value = -float(data.weight @ terms.log_likelihood) / data.total
    gradient = -(data.weight @ terms.gradient) / data.total * theta
    return value + penalizer * float(theta @ theta), gradient + 2.0 * penalizer * theta**2


def _pareto_start(start: Mapping[str, float] | None) -> dict[str, float] | None:
    """A warm start for the Pareto/NBD limit: Pareto/NBD's parameters as given, or GG/NBD's
    mapped to its limit (``β / b``)."""
    if start is None:
        return None
    if set(start) == set(ParetoNBD.params):
        return dict(start)
    if set(start) == set(GammaGompertzNBD.params) and start["b"] > 0:
        return _as_pareto(start)
    return None


def _as_pareto(params: Mapping[str, float]) -> dict[str, float]:
    """GG/NBD's parameters mapped to its Pareto/NBD limit (``β / b``)."""
    return {k: params[k] for k in ("r", "alpha", "s")} | {"beta": params["beta"] / params["b"]}


def _pareto_limit(params: dict[str, float], span: float) -> dict[str, float] | None:
    """Pareto/NBD's parameters when GG/NBD at ``params`` is at that limit over times up to
    ``span`` (:data:`_SCORES_AT_LIMIT`), else None."""
    return _as_pareto(params) if params["b"] * span < _SCORES_AT_LIMIT else None


def _theta(params: dict[str, float]) -> np.ndarray:
    return np.array([params[n] for n in GammaGompertzNBD.params], dtype=float)


def _remaining_lifetime(
    params: dict[str, float], t: np.ndarray, T: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The time alive within ``(T, T + t]`` of a customer alive at ``T``, as a quadrature:
    exposures ``u`` (one row per entry, the last column ``t`` itself) and their probabilities.

    In ``y = log(1 + e^(bT)(e^(bu) − 1) / β_T)`` the survival is ``e^(−s·y)``: the nodes carry
    the density ``s·e^(−s·y)`` over ``(0, Y(t))``, the last column the mass ``e^(−s·Y)`` of
    outliving the window.
    """
    _, _, b, s, beta = _theta(params)
    t, T = np.broadcast_arrays(np.asarray(t, dtype=float), np.asarray(T, dtype=float))
    t, T = t.ravel(), T.ravel()
    shift = b * T - _log_base(beta, b, T)  # log(e^(bT) / β_T)
    bt = b * t
    with np.errstate(divide="ignore"):  # t = 0: no time in the window, Y = 0
        log_growth = np.where(bt > _LARGE, bt, np.log(np.expm1(np.minimum(bt, _LARGE))))
    span = np.logaddexp(0.0, shift + log_growth)[:, None]  # Y(t)
    y = NODES * span
    u = np.log1p(np.exp(-shift)[:, None] * np.expm1(y)) / b
    exposure = np.concatenate([np.minimum(u, t[:, None]), t[:, None]], axis=1)
    weight = np.concatenate([WEIGHTS * span * s * np.exp(-s * y), np.exp(-s * span)], axis=1)
    return exposure, weight


_PARETO = ParetoNBD()


class GammaGompertzNBD(PurchaseProcess):
    """GG/NBD: purchase rate λ ~ Gamma(r, α); Gompertz lifetime with scale ``b`` and
    individual η ~ Gamma(s, β)."""

    kind: ClassVar[str] = "ggomnbd"
    name: ClassVar[str] = "GG/NBD"
    params: ClassVar[tuple[str, ...]] = ("r", "alpha", "b", "s", "beta")
    time_params: ClassVar[tuple[str, ...]] = ("alpha",)
    rate_params: ClassVar[tuple[str, ...]] = ("b",)
    limit_params: ClassVar[tuple[str, ...]] = ("b", "beta")
    start: ClassVar[float] = 0.0
    gtol: ClassVar[float] = 1e-9
    analytic_gradient: ClassVar[bool] = True
    #: CLVTools' static covariates: α·e^(−γᵀz) and β·e^(−γᵀz), so each rate's mean is
    #: multiplied by e^(γᵀz).
    covariate_links: ClassVar[dict[str, tuple[tuple[str, float], ...]]] = {
        "purchase": (("alpha", -1.0),),
        "dropout": (("beta", -1.0),),
    }

    def costly_scores(self, params: dict[str, float]) -> bool:
        return True  # a quadrature of the dropout time per history

    def fit(
        self, data: Patterns, penalizer: float, start: Mapping[str, float] | None = None
    ) -> Fit:
        """The fit through the model's Pareto/NBD limit (``b → 0`` with ``β / b`` fixed).

        Pareto/NBD is fitted first (from ``start`` when it is Pareto/NBD's parameters or
        GG/NBD's at the limit). At its optimum every other slope is zero, so the slope of
        GG/NBD's likelihood in ``b`` there decides: when it falls as ``b`` grows, the limit is
        GG/NBD's maximum (the Karush-Kuhn-Tucker conditions at the edge ``b ≥ 0``) and is the
        answer, shipped at ``b·T = 1e-10``; when it rises, BFGS climbs from ``b·T = 0.01`` and
        from the default start (the likelihood can have more than one mode: on 5,000 simulated
        GG/NBD customers the climb stopped 16 units below the other), and the better converged
        fit is kept. On full CDNOW that takes 0.8 s instead
        of the 7 s a fit from the default start crawls along the ridge to the same point, and
        it answers on logs where that crawl stops short with "precision loss" (BTYDplus'
        grocery log at some cutoffs). ``start`` with ``b`` off the limit warm-starts GG/NBD
        directly; a penalized fit (the retry) starts from the default.
        """
        if penalizer > 0:
            return fit_patterns(self, data, penalizer)
        span = float(data.T.max())
        if start is not None and set(start) == set(self.params) and start["b"] * span > _AT_LIMIT:
            return fit_patterns(self, data, 0.0, start_params=start)
        limit = ParetoNBD().fit(data, 0.0, _pareto_start(start), covariance=False)
        if not limit.converged:
            return fit_patterns(self, data, 0.0)

        def point(scale: float) -> dict[str, float]:
            b = scale / span
            r, alpha, s, beta = (limit.params[k] for k in ParetoNBD.params)
            return {"r": r, "alpha": alpha, "b": b, "s": s, "beta": b * beta}

        near, far = (self.log_likelihood(point(c), data) for c in _SLOPE_AT)
        at_limit = Fit(
            params=point(_LIMIT_POINT),
            log_likelihood=limit.log_likelihood,  # the limit's, to ~1e-10 at b·T = 1e-10
            standard_errors={},
            covariance=(),
            converged=True,
            message="the Pareto/NBD limit (b -> 0): the likelihood falls as b grows from it",
        )
        if not far > near:
            return at_limit
        fits = [
            fit_patterns(self, data, 0.0, start_params=point(_CLIMB_FROM)),
            fit_patterns(self, data, 0.0),
            at_limit,
        ]
        return max(fits, key=lambda f: (f.converged, f.log_likelihood))

    def objective(
        self, log_params: np.ndarray, data: Patterns, penalizer: float, prepared: Any
    ) -> tuple[float, np.ndarray]:
        return _objective(log_params, data, penalizer)

    def log_likelihood(self, params: dict[str, float], data: Patterns) -> float:
        terms = _terms(_theta(params), data.x, data.t_x, data.T, grad=False)
        return float(data.weight @ terms.log_likelihood)

    def log_likelihood_each(
        self, params: dict[str, float], x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        """Log-likelihood of each history (no weights)."""
        _, x, t_x, T = flat_histories(x, t_x, T)
        return _terms(_theta(params), x, t_x, T, grad=False).log_likelihood

    def log_odds_dead(
        self, params: dict[str, float], x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        shape, x, t_x, T = flat_histories(x, t_x, T)
        limit = _pareto_limit(params, T.max(initial=0.0))
        if limit is not None:
            return _PARETO.log_odds_dead(limit, x, t_x, T).reshape(shape)
        with np.errstate(divide="ignore"):
            return _terms(_theta(params), x, t_x, T, grad=False).log_odds_dead.reshape(shape)

    def _p_alive(self, params: dict[str, float], x, t_x, T) -> np.ndarray:
        with np.errstate(over="ignore"):
            return np.clip(expit(-self.log_odds_dead(params, x, t_x, T)), 0.0, 1.0)

    def expected_purchases(
        self, params: dict[str, float], t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        """P(alive) · (r + x) / (α + T) · E[time alive in (T, T + t] | alive at T]; the
        expectation depends on ``T`` alone and is taken once per distinct ``T``."""
        r, alpha = params["r"], params["alpha"]
        shape, x, t_x, T = flat_histories(x, t_x, T)
        limit = _pareto_limit(params, T.max(initial=0.0) + t)
        if limit is not None:
            return _PARETO.expected_purchases(limit, t, x, t_x, T).reshape(shape)
        which, ages = pd.factorize(T)
        exposure, weight = _remaining_lifetime(params, np.full(len(ages), t), np.asarray(ages))
        time_alive = (exposure * weight).sum(axis=1)[which]
        alive = self._p_alive(params, x, t_x, T)
        return (alive * (r + x) / (alpha + T) * time_alive).reshape(shape)

    def expected_purchases_new(self, params: dict[str, float], t: np.ndarray) -> np.ndarray:
        """``r / α · ∫_0^t S(u) du`` (Bemmaor & Glady 2012's expectation, integrated by parts)."""
        t = np.asarray(t, dtype=float)
        limit = _pareto_limit(params, t.max(initial=0.0))
        if limit is not None:
            return _PARETO.expected_purchases_new(limit, t)
        exposure, weight = _remaining_lifetime(params, t, np.zeros(t.shape))
        mean = params["r"] / params["alpha"] * (exposure * weight).sum(axis=1)
        return np.where(t.ravel() > 0, mean, 0.0).reshape(t.shape)

    def purchase_pmf(
        self,
        params: dict[str, float],
        t: float,
        x: np.ndarray,
        t_x: np.ndarray,
        T: np.ndarray,
        k_max: int,
    ) -> np.ndarray:
        """Dead at ``T``: no purchase. Alive: the NB(r + x, u / (α + T + u)) count mixed over
        the time ``u`` left alive in the window (:func:`_remaining_lifetime`)."""
        r, alpha = params["r"], params["alpha"]
        _, x, t_x, T = flat_histories(x, t_x, T)
        limit = _pareto_limit(params, T.max(initial=0.0) + t)
        if limit is not None:
            return _PARETO.purchase_pmf(limit, t, x, t_x, T, k_max)
        alive = self._p_alive(params, x, t_x, T)

        def if_alive(x: np.ndarray, T: np.ndarray) -> np.ndarray:
            exposure, weight = _remaining_lifetime(params, np.full(len(T), t), T)
            return nb_exposure_mixture(r + x, alpha + T, exposure, weight, k_max)

        return alive_mixture(alive, x, T, if_alive)
