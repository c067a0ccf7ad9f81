"""Pareto/NBD (Schmittlein, Morrison & Colombo 1987): Poisson purchases while alive, an
exponential lifetime, both rates Gamma-distributed across customers.

The likelihood is lifetimes' (in the form of Fader & Hardie's 2005 note; tested against its
``_conditional_log_likelihood``), with its Gauss hypergeometric terms evaluated once per distinct
``(x, t_x)`` and ``(x, T)`` pair. Its derivatives in the hypergeometric function's parameters
have no closed form, so the fit maximizes the same likelihood written as an integral over the
dropout time (:mod:`clv.models.dropout_integral`, equal to it to ~1e-12), whose gradient is
analytic: BFGS takes one evaluation per step where central differences took nine. The scores
come from the closed form in log space, so they stay finite for any history.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy.special import digamma, expit, gammaln, hyp2f1

from clv.models.base import (
    Fit,
    PurchaseProcess,
    alive_mixture,
    fit_patterns,
    flat_histories,
    logaddexp,
    nb_exposure_mixture,
)
from clv.models.dropout_integral import dropout_integral
from clv.models.patterns import Patterns


@dataclass(frozen=True)
class _ParetoPairs:
    """Index of the distinct ``(x, t_x)`` and ``(x, T)`` pairs of some patterns."""

    recency_keys: tuple[np.ndarray, np.ndarray]
    recency_index: np.ndarray
    age_keys: tuple[np.ndarray, np.ndarray]
    age_index: np.ndarray

    @classmethod
    def of(cls, data: Patterns) -> _ParetoPairs:
        def pairs(time: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
            # complex numbers sort by real, then imaginary part: a fast two-column unique
            keys, index = np.unique(data.x + 1j * time, return_inverse=True)
            return (keys.real, keys.imag), index

        recency_keys, recency_index = pairs(data.t_x)
        age_keys, age_index = pairs(data.T)
        return cls(recency_keys, recency_index, age_keys, age_index)


def _pareto_time_terms(theta: np.ndarray, data: Patterns, pairs: _ParetoPairs) -> np.ndarray:
    """The per-pattern part of the Pareto/NBD log-likelihood: everything but the terms of x alone.

    ``log A_0`` follows lifetimes' ``ParetoNBDFitter._log_A_0``: the Gauss hypergeometric
    function at ``|α − β| / (max(α, β) + t)`` for ``t = t_x`` and ``t = T``, evaluated once per
    distinct ``(x, t)`` pair, in a form that stays finite for any ``x`` (Euler's transformation
    when ``α < β``).
    """
    r, alpha, s, beta = theta
    low, high = sorted((alpha, beta))
    gap = high - low

    def log_term(keys: tuple[np.ndarray, np.ndarray], index: np.ndarray) -> np.ndarray:
        kx, kt = keys
        rsx = r + s + kx
        z = gap / (high + kt)
        if alpha < beta:
            # 2F1(r+s+x, r+x; r+s+x+1; z) grows like (1 − z)^(−x) and overflows for large x;
            # Euler's transformation leaves a factor (1 − z)^(1−r−x), taken in logs, times a
            # 2F1(1, s+1; r+s+x+1; z) that stays near 1 (equal to mpmath to ~1e-13).
            values = (1.0 - r - kx) * np.log1p(-z) + np.log(hyp2f1(1.0, s + 1.0, rsx + 1.0, z))
        else:
            values = np.log(hyp2f1(rsx, s + 1.0, rsx + 1.0, z))
        return (values - rsx * np.log(high + kt))[index]

    u = log_term(pairs.recency_keys, pairs.recency_index)  # at t_x: the larger of the two
    v = log_term(pairs.age_keys, pairs.age_index)  # at T
    with np.errstate(divide="ignore"):
        log_a0 = u + np.log1p(-np.exp(np.minimum(v - u, 0.0)))  # -inf when t_x = T
    x, T = data.x, data.T
    return logaddexp(
        -(r + x) * np.log(alpha + T) - s * np.log(beta + T),
        np.log(s) + log_a0 - np.log(r + s + x),
    )


def pareto_log_likelihood(params: np.ndarray, data: Patterns) -> np.ndarray:
    """Log-likelihood of each pattern under Pareto/NBD (one value per pattern, unweighted).

    Equals lifetimes' ``ParetoNBDFitter._conditional_log_likelihood`` (tested). Where the
    closed form is not a number (its hypergeometric function overflows for heavy buyers at
    large ``s`` and ``β``: near the edge where every customer drops out at the same rate, which
    is where the likelihood peaks on some logs), the integral's value is taken instead.
    """
    r, alpha, s, beta = params
    x_terms = gammaln(r + data.x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    values = x_terms + _pareto_time_terms(params, data, _ParetoPairs.of(data))
    bad = ~np.isfinite(values)
    if bad.any():
        values[bad] = _integral_terms(
            np.asarray(params, dtype=float), data.x[bad], data.t_x[bad], data.T[bad], False
        )[0]
    return values


def _integral_terms(
    theta: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, grad: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Log-likelihood of each history and (when asked) its gradient in ``θ``, from the
    likelihood's integral over the dropout time: ``S(T) / (α + T)^(r + x)`` plus ``∫ f(τ) / (α
    + τ)^(r + x) dτ`` over ``(t_x, T]``, ``S(τ) = (β / (β + τ))^s``."""
    r, alpha, s, beta = theta
    rx, log_beta = r + x, np.log(beta)
    log_alive = s * (log_beta - np.log(beta + T)) - rx * np.log(alpha + T)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        integral = dropout_integral(
            alpha,
            rx,
            t_x,
            T,
            lambda _, log_base: np.log(s) + s * log_beta - (s + 1.0) * log_base,
            beta,
        )
        log_bracket = logaddexp(log_alive, integral.log_value)
    ll = gammaln(rx) - gammaln(r) + r * np.log(alpha) + log_bracket
    if not grad:
        return ll, None
    with np.errstate(over="ignore", invalid="ignore"):
        p_alive = np.exp(log_alive - log_bracket)
    alive_part = np.stack(
        [
            -np.log(alpha + T),
            -rx / (alpha + T),
            log_beta - np.log(beta + T),
            s / beta - s / (beta + T),
        ],
        axis=1,
    )
    dropout_part = np.stack(
        [
            *integral.rate_gradient(rx),
            1.0 / s + log_beta - integral.mean(integral.log_offset_base),
            s / beta - (s + 1.0) * integral.mean(1.0 / (beta + integral.tau)),
        ],
        axis=1,
    )
    gradient = p_alive[:, None] * alive_part + (1.0 - p_alive)[:, None] * dropout_part
    gradient[:, 0] += digamma(rx) - digamma(r) + np.log(alpha)
    gradient[:, 1] += r / alpha
    return ll, gradient


def _pareto_objective(
    log_params: np.ndarray, data: Patterns, penalizer: float
) -> tuple[float, np.ndarray]:
    """Mean negative log-likelihood of Pareto/NBD plus ``penalizer · Σ θ²`` and its gradient in
    log θ (:func:`_integral_terms`)."""
    theta = np.exp(log_params)
    ll, gradient = _integral_terms(theta, data.x, data.t_x, data.T, True)
    value = -float(data.weight @ ll) / data.total + penalizer * float(theta @ theta)
    slope = -(data.weight @ gradient) / data.total * theta + 2.0 * penalizer * theta**2
    return value, slope


def _closed_form_objective(
    log_params: np.ndarray, data: Patterns, penalizer: float, pairs: _ParetoPairs
) -> float:
    """Mean negative log-likelihood of Pareto/NBD, the terms of x alone once per distinct x."""
    theta = np.exp(log_params)
    r, alpha, s, beta = theta
    ux, wx = data.by_x
    ll = (
        wx @ (gammaln(r + ux) - gammaln(r))
        + data.total * (r * np.log(alpha) + s * np.log(beta))
        + data.weight @ _pareto_time_terms(theta, data, pairs)
    )
    return -float(ll) / data.total + penalizer * float(theta @ theta)


def _pareto_log_odds_dead(
    params: dict[str, float], x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """``log((1 − P_alive) / P_alive)`` of Pareto/NBD: the log-likelihood's "alive" term against
    the whole (Fader & Hardie 2005 note, eq. 37), both from this module's likelihood."""
    log_p_alive = _pareto_log_alive_term(params, x, T) - _pareto_log_likelihood(params, x, t_x, T)
    log_p_alive = np.minimum(log_p_alive, 0.0)  # rounding above log 1
    with np.errstate(divide="ignore"):
        return np.log(-np.expm1(log_p_alive)) - log_p_alive


def _pareto_log_likelihood(
    params: dict[str, float], x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """Pareto/NBD log-likelihood of each history (:func:`pareto_log_likelihood`)."""
    theta = np.array([params[n] for n in ParetoNBD.params], dtype=float)
    data = Patterns.of(x, t_x, T)
    with np.errstate(divide="ignore"):
        return pareto_log_likelihood(theta, data).reshape(np.broadcast(x, t_x, T).shape)


def _pareto_log_alive_term(params: dict[str, float], x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Log of the likelihood's term for a customer still alive at ``T`` (Pareto/NBD)."""
    r, alpha, s, beta = (params[k] for k in ("r", "alpha", "s", "beta"))
    return (
        gammaln(r + x)
        - gammaln(r)
        + r * np.log(alpha)
        + s * np.log(beta)
        - (r + x) * np.log(alpha + T)
        - s * np.log(beta + T)
    )


#: Gauss–Legendre rule for the dropout time within the forecast window (see
#: :func:`pareto_purchase_pmf`); 32 nodes integrate its smooth integrand to ~1e-12.
_DROPOUT_NODES, _DROPOUT_WEIGHTS = np.polynomial.legendre.leggauss(32)


def pareto_purchase_pmf(
    params: dict[str, float],
    t: float,
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    k_max: int,
) -> np.ndarray:
    """``P(X(t) = k | x, t_x, T)``, ``k = 0 … k_max``, of Pareto/NBD (1-D histories).

    A customer dead at ``T`` buys nothing. One alive at ``T`` has the posterior purchase rate
    λ ~ Gamma(r + x, α + T) and dropout rate μ ~ Gamma(s, β + T), so the time ``τ`` left to
    live is Pareto II: ``P(τ > u) = ((β + T) / (β + T + u))^s``. Given an exposure ``u =
    min(τ, t)`` the count is negative binomial, NB(r + x, u / (α + T + u)); the PMF is its
    mixture over the exposure: the point mass ``P(τ > t)`` at ``u = t`` plus an integral over
    the dropout time. That integral is taken in ``y = log(1 + u / (β + T))``, where the
    dropout density becomes ``s·e^(−s·y)`` — smooth on the whole window, whatever the
    parameters — by a 32-node Gauss–Legendre rule. Equal to lifetimes'
    ``conditional_probability_of_n_purchases_up_to_time`` (Fader & Hardie's closed form, which
    overflows for heavy buyers) where that is finite, and its mean is
    :meth:`ParetoNBD.expected_purchases` (both tested). Given alive, the table depends on
    ``(x, T)`` alone (:func:`~clv.models.base.alive_mixture`).
    """
    r, alpha, s, beta = (params[k] for k in ParetoNBD.params)
    _, x, t_x, T = flat_histories(x, t_x, T)
    with np.errstate(over="ignore"):
        alive = np.clip(expit(-_pareto_log_odds_dead(params, x, t_x, T)), 0.0, 1.0)

    def if_alive(x: np.ndarray, T: np.ndarray) -> np.ndarray:
        b_post = beta + T
        span = np.log1p(t / b_post)[:, None]
        y = (_DROPOUT_NODES + 1.0) / 2.0 * span
        exposure = np.concatenate([b_post[:, None] * np.expm1(y), np.full((len(x), 1), t)], axis=1)
        weight = np.concatenate(
            [_DROPOUT_WEIGHTS / 2.0 * span * s * np.exp(-s * y), np.exp(-s * span)], axis=1
        )
        return nb_exposure_mixture(r + x, alpha + T, exposure, weight, k_max)

    return alive_mixture(alive, x, T, if_alive)


class ParetoNBD(PurchaseProcess):
    """Pareto/NBD: purchase rate λ ~ Gamma(r, α), dropout rate μ ~ Gamma(s, β)."""

    kind: ClassVar[str] = "pareto"
    name: ClassVar[str] = "Pareto/NBD"
    params: ClassVar[tuple[str, ...]] = ("r", "alpha", "s", "beta")
    time_params: ClassVar[tuple[str, ...]] = ("alpha", "beta")
    lifetimes_fitter: ClassVar[str] = "ParetoNBDFitter"
    start: ClassVar[float] = 1.0
    gtol: ClassVar[float] = 1e-9
    analytic_gradient: ClassVar[bool] = True
    #: CLVTools' static covariates: α·e^(−γᵀz) and β·e^(−γᵀz), so each rate's mean is
    #: multiplied by e^(γᵀz).
    covariate_links: ClassVar[dict[str, tuple[tuple[str, float], ...]]] = {
        "purchase": (("alpha", -1.0),),
        "dropout": (("beta", -1.0),),
    }

    def costly_scores(self, params: dict[str, float]) -> bool:
        return True  # Gauss' hypergeometric function per history

    def fit(
        self,
        data: Patterns,
        penalizer: float,
        start: Mapping[str, float] | None = None,
        covariance: bool = True,
    ) -> Fit:
        """The fit by the integral's analytic gradient, or by central differences of the
        closed form when its distinct ``(x, t)`` pairs are few beside the patterns
        (:data:`CLOSED_FORM_SHARE`) and it converges within :data:`CLOSED_FORM_STEPS` steps.
        Where purchase rates barely differ (``r`` in the thousands) the differences lose the
        precision BFGS needs: on 5,000 equal buyers the closed form stopped after 11 s, not
        converged, where the integral converged in 3 s to a higher likelihood. A warm start
        with ``r`` of :data:`CLOSED_FORM_SHAPE` or more goes to the integral directly.
        ``covariance=False`` skips the standard errors (GG/NBD's fit through this limit,
        which ships none there). A closed-form climb that takes ``r`` past
        :data:`CLOSED_FORM_SHAPE` leaves for the integral there: the hypergeometric function's
        series then costs up to a second per evaluation and is not a number beyond r ≈ 500 (5,000
        Erlang-3 buyers of one rate took 46 s that way, not converged)."""
        if closed_form_pays(data) and (start is None or start["r"] < CLOSED_FORM_SHAPE):
            try:
                fit = fit_patterns(
                    _ClosedForm(),
                    data,
                    penalizer,
                    start_params=start,
                    maxiter=CLOSED_FORM_STEPS,
                    covariance=covariance,
                )
            except _BeyondClosedFormError:
                pass  # rates that barely differ: the integral from the start
            else:
                if fit.converged:
                    return fit
        return fit_patterns(self, data, penalizer, start_params=start, covariance=covariance)

    def objective(
        self, log_params: np.ndarray, data: Patterns, penalizer: float, prepared: Any
    ) -> tuple[float, np.ndarray]:
        return _pareto_objective(log_params, data, penalizer)

    def log_likelihood(self, params: dict[str, float], data: Patterns) -> float:
        theta = np.array([params[n] for n in self.params], dtype=float)
        return float(data.weight @ pareto_log_likelihood(theta, data))

    def log_odds_dead(
        self, params: dict[str, float], x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        return _pareto_log_odds_dead(params, x, t_x, T)

    def expected_purchases(
        self, params: dict[str, float], t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        """Fader & Hardie (2005 note, eq. 41): P(alive) · (r + x)(β + T) / ((α + T)(s − 1))
        · [1 − ((β + T) / (β + T + t))^(s − 1)], the bracket over (s − 1) taken with expm1 so
        that s = 1 (where it becomes log(1 + t / (β + T))) is no special case."""
        r, alpha, s, beta = (params[k] for k in self.params)
        c, u = s - 1.0, np.log1p(t / (beta + T))
        growth = u if abs(c) < 1e-12 else -np.expm1(-c * u) / c
        with np.errstate(over="ignore"):
            alive = np.clip(expit(-self.log_odds_dead(params, x, t_x, T)), 0.0, 1.0)
        return alive * (r + x) * (beta + T) / (alpha + T) * growth

    def p_no_purchase(
        self, params: dict[str, float], t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        """The ratio of the likelihoods of the history observed to ``T + t`` and to ``T`` —
        seeing no purchase in ``(T, T + t]`` is exactly what extending the observation adds —
        which equals the conditional PMF at zero (Fader, Hardie & Shang 2010, eq. 16) and is
        finite for any ``x`` (lifetimes' form overflows for heavy buyers)."""
        log_ratio = _pareto_log_likelihood(params, x, t_x, T + t) - _pareto_log_likelihood(
            params, x, t_x, T
        )
        return np.clip(np.exp(log_ratio), 0.0, 1.0)

    def purchase_pmf(
        self,
        params: dict[str, float],
        t: float,
        x: np.ndarray,
        t_x: np.ndarray,
        T: np.ndarray,
        k_max: int,
    ) -> np.ndarray:
        return pareto_purchase_pmf(params, t, x, t_x, T, k_max)


#: An evaluation of the closed form costs 0.3–1.2 µs per distinct ``(x, t_x)`` and ``(x, T)``
#: pair, and central differences take nine per step; the integral costs about 2.7 µs per
#: pattern, once per step with its gradient, and BFGS takes fewer steps with it (a ridge that
#: took 83 steps of differences took far fewer). The closed form is used when the pairs are
#: fewer than this share of the patterns: on whole days (CDNOW's 9,895 patterns have 3,591
#: pairs; a simulated daily log's 78,475 have 7,891) it is twice as fast; with exact times every
#: pair is distinct and the integral fits 5,000 simulated customers in 3 s instead of 21 s.
CLOSED_FORM_SHARE = 0.75
#: Most BFGS steps of the closed form's attempt (CDNOW converges in about 50).
CLOSED_FORM_STEPS = 80
#: A warm start with ``r`` this large (rates that barely differ) skips the closed form, and a
#: closed-form climb that reaches it leaves for the integral.
CLOSED_FORM_SHAPE = 100.0


class _BeyondClosedFormError(Exception):
    """The closed form's climb reached ``r`` ≥ :data:`CLOSED_FORM_SHAPE`."""


def closed_form_pays(data: Patterns) -> bool:
    """Whether the closed form's central differences fit ``data`` faster than the integral's
    gradient: its distinct pairs are fewer than :data:`CLOSED_FORM_SHARE` of the patterns."""
    pairs = _ParetoPairs.of(data)
    count = len(pairs.recency_keys[0]) + len(pairs.age_keys[0])
    return count < CLOSED_FORM_SHARE * len(data.x)


class _ClosedForm(ParetoNBD):
    """Pareto/NBD fitted by central differences of its closed form (see :meth:`ParetoNBD.fit`)."""

    gtol: ClassVar[float] = 1e-8
    analytic_gradient: ClassVar[bool] = False

    def prepare(self, data: Patterns) -> _ParetoPairs:
        return _ParetoPairs.of(data)

    def objective(
        self, log_params: np.ndarray, data: Patterns, penalizer: float, prepared: Any
    ) -> tuple[float, None]:
        if log_params[0] >= np.log(CLOSED_FORM_SHAPE):
            raise _BeyondClosedFormError
        return _closed_form_objective(log_params, data, penalizer, prepared), None
