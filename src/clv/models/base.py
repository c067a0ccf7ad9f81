"""What every purchase model is, and the one pattern-weighted maximum-likelihood fit they share.

A purchase model (:class:`PurchaseProcess`) is its mathematics, with no state: parameter names
and bounds, the mean negative log-likelihood over weighted patterns (with its gradient where it
has one in closed form), and the score quantities given parameters — P(alive) through its log
odds, expected purchases and P(no purchase) in ``(T, T + t]``. :func:`fit_patterns` maximizes any
of them with lifetimes' conventions (log parameters, time rescaled so that the largest ``T`` is 1,
the mean negative log-likelihood per customer plus ``penalizer · Σ θ²`` on the rescaled
parameters), on distinct ``(x, t_x, T)`` patterns weighted by their counts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import gammaln

from clv.models.patterns import Patterns


class PurchaseProcess(ABC):
    """The mathematics of one BTYD purchase model; one subclass per model, one module each.

    Class attributes name the model (``kind`` is its config name), its parameters in optimizer
    order, which of them are times or rates (they scale with the time unit or its inverse),
    their bounds, lifetimes' fitter of the same model, and the optimizer's start and gradient
    tolerance. Parameters are
    passed as a dict of name → value in the data's time unit; histories as float arrays.
    """

    kind: ClassVar[str]
    name: ClassVar[str]
    params: ClassVar[tuple[str, ...]]
    time_params: ClassVar[tuple[str, ...]]
    #: Parameters that are rates per unit of time (they scale with the inverse time unit).
    rate_params: ClassVar[tuple[str, ...]] = ()
    #: Parameters that may run to 0 because the model has a proper limit there (GG/NBD's
    #: ``b`` and ``β``: constant hazard, Pareto/NBD); others below
    #: :data:`~clv.models.fitting.MIN_PARAMETER` make a fit fail.
    limit_params: ClassVar[tuple[str, ...]] = ()
    #: Whether the fit reads the times between purchases (``log_gap_sum``), not only patterns.
    needs_log_gaps: ClassVar[bool] = False
    #: Parameters on the real line, fitted as they are (covariate coefficients); all others are
    #: positive and fitted in logs.
    unconstrained: ClassVar[tuple[str, ...]] = ()
    #: How static covariates z enter the model (:mod:`clv.models.covariates`): for each
    #: process (``purchase``, ``dropout``), the parameters whose logs shift by
    #: ``sign · γᵀz``. Empty: the model takes no covariates.
    covariate_links: ClassVar[dict[str, tuple[tuple[str, float], ...]]] = {}
    #: lifetimes' fitter of the same model, if it has one.
    lifetimes_fitter: ClassVar[str | None] = None
    #: Starting value of every log parameter of the time-rescaled problem (lifetimes' default).
    start: ClassVar[float]
    #: Gradient tolerance of BFGS on the mean negative log-likelihood.
    gtol: ClassVar[float]
    #: Whether :meth:`objective` returns the gradient (else the fit differentiates numerically).
    analytic_gradient: ClassVar[bool]

    @property
    def bounds(self) -> dict[str, tuple[float, float]]:
        """Open interval of each parameter (all BTYD parameters are positive)."""
        return dict.fromkeys(self.params, (0.0, np.inf))

    def fit(
        self, data: Patterns, penalizer: float, start: Mapping[str, float] | None = None
    ) -> Fit:
        """Maximum-likelihood fit on weighted patterns (:func:`fit_patterns`), from ``start``
        when given (a fit's parameters: e.g. the same model on a neighbouring window); a model
        with a discrete parameter searches over it here."""
        return fit_patterns(self, data, penalizer, start_params=start)

    def prepare(self, data: Patterns) -> Any:
        """Whatever :meth:`objective` reuses across evaluations on ``data`` (default: nothing)."""
        return None

    @abstractmethod
    def objective(
        self, log_params: np.ndarray, data: Patterns, penalizer: float, prepared: Any
    ) -> tuple[float, np.ndarray | None]:
        """Mean negative log-likelihood per customer plus ``penalizer · Σ θ²``, and its gradient
        in log parameters (``None`` unless :attr:`analytic_gradient`)."""

    @abstractmethod
    def log_likelihood(self, params: dict[str, float], data: Patterns) -> float:
        """Total log-likelihood of ``data`` at ``params`` (no penalty, the data's time unit)."""

    @abstractmethod
    def log_odds_dead(
        self, params: dict[str, float], x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        """``log((1 − P_alive) / P_alive)`` of each history (``-inf`` where it must be alive)."""

    @abstractmethod
    def expected_purchases(
        self, params: dict[str, float], t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        """Expected number of purchases in ``(T, T + t]``, ``t > 0``."""

    def p_no_purchase(
        self, params: dict[str, float], t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        """Probability of no purchase in ``(T, T + t]``, ``t > 0``: by default the predictive
        PMF at 0 (:meth:`purchase_pmf`)."""
        shape = np.broadcast(x, t_x, T).shape
        return self.purchase_pmf(params, t, x, t_x, T, 0)[:, 0].reshape(shape)

    def expected_purchases_new(self, params: dict[str, float], t: np.ndarray) -> np.ndarray:
        """Expected repeat purchases in ``(0, t]`` of a customer acquired at 0 (unconditional);
        by default lifetimes' ``expected_number_of_purchases_up_to_time``."""
        return np.asarray(
            self.lifetimes_model(params).expected_number_of_purchases_up_to_time(t), dtype=float
        )

    def lifetimes_model(self, params: dict[str, float]) -> Any:
        """lifetimes' fitter of this model set to ``params`` (for its closed forms).

        Raises
        ------
        NotImplementedError
            When lifetimes does not have the model.
        """
        from clv._lifetimes import fitters

        if self.lifetimes_fitter is None:
            raise NotImplementedError(f"lifetimes has no {self.name} model")
        fitter = getattr(fitters(), self.lifetimes_fitter)()
        fitter.params_ = pd.Series([params[n] for n in self.params], index=list(self.params))
        return fitter

    @abstractmethod
    def purchase_pmf(
        self,
        params: dict[str, float],
        t: float,
        x: np.ndarray,
        t_x: np.ndarray,
        T: np.ndarray,
        k_max: int,
    ) -> np.ndarray:
        """Predictive distribution of the purchases in ``(T, T + t]`` given each history:
        ``P(X(t) = k | x, t_x, T)`` for ``k = 0 … k_max``, shape ``(len(x), k_max + 1)``
        (1-D histories; the mass above ``k_max`` is left out)."""


def flat_histories(
    x: Any, t_x: Any, T: Any
) -> tuple[tuple[int, ...], np.ndarray, np.ndarray, np.ndarray]:
    """Histories broadcast together: their common shape, and each as a flat float array."""
    x, t_x, T = np.broadcast_arrays(x, t_x, T)
    return x.shape, *(np.ravel(v).astype(float) for v in (x, t_x, T))


def alive_mixture(
    alive: np.ndarray,
    x: np.ndarray,
    T: np.ndarray,
    if_alive: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """A predictive PMF from P(alive at T) and the PMF of a customer alive at T.

    ``P(X = k) = P_alive · P(X = k | alive) + (1 − P_alive) · [k = 0]``. Given alive, the
    models' future depends on the history through ``x`` and ``T`` alone (the posterior of the
    rates), not ``t_x``: ``if_alive(x, T)`` is called once on the distinct ``(x, T)`` pairs, of
    which a log has far fewer than ``(x, t_x, T)`` patterns.
    """
    which, pairs = pd.factorize(x + 1j * T)  # hashing one complex key beats sorting rows
    pmf = alive[:, None] * if_alive(pairs.real, pairs.imag)[which]
    pmf[:, 0] += 1.0 - alive
    return pmf


def nb_exposure_mixture(
    rx: np.ndarray, a_post: np.ndarray, exposure: np.ndarray, weight: np.ndarray, k_max: int
) -> np.ndarray:
    """PMF of purchases ``k = 0 … k_max`` of customers alive now whose purchase rate is
    Gamma(``rx``, ``a_post``) and who stay alive for an exposure ``exposure[:, j]`` with
    probability ``weight[:, j]`` (a quadrature of the remaining lifetime, its point mass at
    the window's end included): the mixture of NB(``rx``, u / (``a_post`` + u)) over u."""
    k = np.arange(k_max + 1.0)
    log_choose = gammaln(rx[:, None] + k) - gammaln(rx)[:, None] - gammaln(k + 1.0)
    log_total = np.log(a_post[:, None] + exposure)
    log_none = rx[:, None] * (np.log(a_post)[:, None] - log_total)  # NB(rx, ·) at 0
    with np.errstate(divide="ignore"):
        log_odds = np.log(exposure) - log_total
        log_front = log_none + np.log(weight)
    mixture = np.zeros((len(rx), k.size))
    for node in range(exposure.shape[1]):  # one (histories × k) table at a time
        mixture += np.exp(log_choose + log_front[:, node, None] + log_odds[:, node, None] * k)
    return mixture


def logaddexp(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``numpy.logaddexp`` for finite ``a``, in a third of its time."""
    high = np.maximum(a, b)
    return high + np.log1p(np.exp(np.minimum(a, b) - high))


def central_gradient(
    fun: Callable[[np.ndarray], Any], point: np.ndarray, step: float = 1e-6
) -> np.ndarray:
    """Gradient of ``fun`` at ``point`` by central differences of width ``2 · step``.

    For a ``fun`` returning an array, its Jacobian: the array's shape plus a last axis over
    ``point``'s entries.
    """
    columns = []
    for i in range(point.size):
        h = np.zeros_like(point)
        h[i] = step
        columns.append((np.asarray(fun(point + h)) - np.asarray(fun(point - h))) / (2 * step))
    return np.stack(columns, axis=-1)


@dataclass(frozen=True)
class Fit:
    """Result of :func:`fit_patterns`.

    Parameters
    ----------
    params : dict
        Fitted parameters in the data's own time unit.
    log_likelihood : float
        Total log-likelihood over customers at ``params`` (unscaled time, no penalty).
    standard_errors : dict
        From the inverse Hessian of the total negative log-likelihood (delta method from log
        parameters); empty when the Hessian is not positive definite.
    covariance : tuple
        Covariance matrix of the log parameters (rows in ``process.params`` order): the
        inverse observed information, the Laplace approximation of their sampling
        distribution; empty when the Hessian is not positive definite. Log parameters make it
        independent of the time unit.
    converged : bool
        Whether the optimizer reported success.
    message : str
        The optimizer's message.
    """

    params: dict[str, float]
    log_likelihood: float
    standard_errors: dict[str, float]
    covariance: tuple[tuple[float, ...], ...]
    converged: bool
    message: str


class Likelihood(Protocol):
    """What :func:`fit_patterns` fits: a :class:`PurchaseProcess`, or a model with covariates
    (:class:`clv.models.covariates.CovariateProcess`) over grouped patterns."""

    params: tuple[str, ...]
    time_params: tuple[str, ...]
    rate_params: tuple[str, ...]
    unconstrained: tuple[str, ...]
    start: float
    gtol: float
    analytic_gradient: bool

    def prepare(self, data: Any) -> Any: ...

    def objective(
        self, log_params: np.ndarray, data: Any, penalizer: float, prepared: Any
    ) -> tuple[float, np.ndarray | None]: ...

    def log_likelihood(self, params: dict[str, float], data: Any) -> float: ...


#: The shape r of the second start of :func:`fit_patterns` (rates that barely differ).
HOMOGENEOUS_START = 100.0


def fit_patterns(
    process: Likelihood,
    data: Any,
    penalizer: float = 0.0,
    start: np.ndarray | None = None,
    tol: float | None = None,
    start_params: Mapping[str, float] | None = None,
) -> Fit:
    """Maximize the likelihood of a purchase model on weighted patterns.

    Parameters
    ----------
    process : Likelihood
    data : Patterns
        Or whatever ``process`` reads (with ``T``, ``total`` and ``scaled``).
    penalizer : float
        L2 penalizer on the parameters of the time-rescaled problem (lifetimes' convention).
    start : numpy.ndarray, optional
        Starting log parameters of the rescaled problem; default ``process.start`` each.
    tol : float, optional
        Gradient tolerance of BFGS; default ``process.gtol`` (1e-10 with an analytic gradient,
        1e-8 with central differences: tighter only adds evaluations that stall on rounding).
    start_params : mapping, optional
        Starting parameters in the data's time unit (a fit's ``params``) instead of ``start``:
        a warm start, which also skips the second start (the optimum sought is the start's).
        Ignored unless it names every parameter with a usable value.

    Returns
    -------
    Fit
    """
    names = process.params
    tol = tol if tol is not None else process.gtol
    scale = 1.0 / float(data.T.max())
    scaled = data.scaled(scale)
    prepared = process.prepare(scaled)
    if process.analytic_gradient:

        def objective(p: np.ndarray) -> tuple[float, np.ndarray]:
            return process.objective(p, scaled, penalizer, prepared)
    else:

        def value(p: np.ndarray) -> float:
            out = process.objective(p, scaled, penalizer, prepared)[0]
            return out if np.isfinite(out) else 1e300

        def objective(p: np.ndarray) -> tuple[float, np.ndarray]:
            return value(p), central_gradient(value, p)

    free = np.array([n in process.unconstrained for n in names])
    if start is None:
        start = _scaled_start(process, start_params, scale, free)
    x0 = np.where(free, 0.0, process.start) if start is None else np.asarray(start, dtype=float)

    def run(x: np.ndarray) -> Any:
        with np.errstate(all="ignore"):
            return minimize(
                objective, x, jac=True, method="BFGS", options={"gtol": tol, "maxiter": 1000}
            )

    result = run(x0)
    second = process.analytic_gradient and {"r", "alpha"} <= set(names)
    if start is None and second and result.x[names.index("r")] > 0:
        # the likelihood can have a second mode where purchase rates barely differ (r, α large,
        # r/α the mean rate): a log of equal buyers fitted from the default start stops at a
        # heterogeneous local maximum 400 log-likelihood units below it (benchmarks/zoo.py).
        # When the first fit already finds rates that differ little (r > 1: their coefficient
        # of variation below 1), the fit starts again there and keeps the better objective;
        # a heterogeneous log (CDNOW: r ≈ 0.25) is fitted once, as before, and so is a model
        # without an analytic gradient (Pareto/NBD: the second start tripled its 15 s there)
        rate = float(np.sum(scaled.weight * scaled.x) / np.sum(scaled.weight * scaled.T))
        if np.isfinite(rate) and rate > 0:
            alt = x0.copy()
            alt[names.index("r")] = np.log(HOMOGENEOUS_START)
            alt[names.index("alpha")] = np.log(HOMOGENEOUS_START / rate)
            other = run(alt)
            if np.isfinite(other.fun) and other.fun < result.fun - 1e-9:
                result = other
    theta = np.where(free, result.x, np.exp(np.where(free, 0.0, result.x)))
    # Rescaling time adds a constant to the log-likelihood and shifts the log of each time (or
    # rate) parameter: the Hessian in log parameters is the same on the scaled data.
    covariance = _log_covariance(process, result.x, scaled, prepared)
    for i, name in enumerate(names):  # back to the data's time unit
        if name in process.time_params:
            theta[i] /= scale
        elif name in process.rate_params:
            theta[i] *= scale
    params = dict(zip(names, theta.tolist(), strict=True))
    with np.errstate(all="ignore"):
        log_likelihood = process.log_likelihood(params, data)
    return Fit(
        params=params,
        log_likelihood=log_likelihood,
        standard_errors=standard_errors(covariance, theta, names, process.unconstrained),
        covariance=() if covariance is None else tuple(map(tuple, covariance.tolist())),
        converged=bool(result.success) or _stalled_at_optimum(result, tol, covariance),
        message=str(result.message),
    )


def _scaled_start(
    process: Likelihood, params: Mapping[str, float] | None, scale: float, free: np.ndarray
) -> np.ndarray | None:
    """``params`` (the data's time unit) as log parameters of the time-rescaled problem; None
    unless they are this model's, finite, and positive where they must be."""
    names = process.params
    if params is None or set(params) != set(names):
        return None
    theta = np.array([float(params[n]) for n in names])
    if not np.all(np.isfinite(theta)) or np.any((theta <= 0) & ~free):
        return None
    for i, name in enumerate(names):  # to the rescaled problem (fit_patterns undoes this)
        if name in process.time_params:
            theta[i] *= scale
        elif name in process.rate_params:
            theta[i] /= scale
    return np.where(free, theta, np.log(np.where(free, 1.0, theta)))


def _stalled_at_optimum(result, tol: float, covariance: np.ndarray | None) -> bool:
    """BFGS' "precision loss" at a point whose gradient is already tiny is a converged fit when
    the point is a maximum (the Hessian is positive definite). A flat ridge running off to
    infinity (e.g. BG/NBD's a and b in the thousands, which the data do not identify) also stalls
    with a tiny gradient; its Hessian is singular, and it is not a converged fit."""
    return bool(
        covariance is not None
        and np.all(np.isfinite(result.x))
        and np.max(np.abs(result.jac)) < max(tol, 1e-6)
    )


def _log_covariance(
    process: Likelihood,
    log_params: np.ndarray,
    data: Any,
    prepared: Any,
) -> np.ndarray | None:
    """Covariance of the log parameters: inverse Hessian of the total negative log-likelihood
    (central differences of the gradient); ``None`` when it is not positive definite."""
    total, k = data.total, len(log_params)
    with np.errstate(all="ignore"):
        if process.analytic_gradient:

            def grad(p: np.ndarray) -> np.ndarray:
                return process.objective(p, data, 0.0, prepared)[1] * total
        else:

            def grad(p: np.ndarray) -> np.ndarray:
                return central_gradient(
                    lambda q: process.objective(q, data, 0.0, prepared)[0] * total, p, 1e-5
                )

        step = 1e-5
        hessian = np.empty((k, k))
        for i in range(k):
            h = np.zeros(k)
            h[i] = step
            hessian[:, i] = (grad(log_params + h) - grad(log_params - h)) / (2 * step)
    return inverse_information(hessian)


def inverse_information(hessian: np.ndarray) -> np.ndarray | None:
    """Covariance from the Hessian of a total negative log-likelihood (symmetrized), or
    ``None`` unless it is finite and positive definite."""
    symmetric = (hessian + hessian.T) / 2
    if not np.all(np.isfinite(symmetric)):
        return None
    try:
        np.linalg.cholesky(symmetric)
        covariance = np.linalg.inv(symmetric)
    except np.linalg.LinAlgError:
        return None
    return covariance if np.all(np.isfinite(covariance)) else None


def standard_errors(
    log_covariance: np.ndarray | None,
    theta: np.ndarray,
    names: tuple[str, ...],
    unconstrained: tuple[str, ...] = (),
) -> dict[str, float]:
    """Delta method: the standard error of θ is θ times the standard deviation of log θ (of an
    ``unconstrained`` parameter, fitted as it is, its own standard deviation)."""
    if log_covariance is None:
        return {}
    sd = np.sqrt(np.diag(log_covariance))
    scale = np.array(
        [1.0 if n in unconstrained else abs(v) for n, v in zip(names, theta, strict=True)]
    )
    return dict(zip(names, (scale * sd).tolist(), strict=True))


def saved_covariance(rows: Any, size: int) -> tuple[tuple[float, ...], ...]:
    """A saved covariance matrix, checked: ``size × size``, finite and symmetric, or empty."""
    if not rows:
        return ()
    matrix = np.asarray(rows, dtype=float)
    if (
        matrix.shape != (size, size)
        or not np.all(np.isfinite(matrix))
        or not np.allclose(matrix, matrix.T)
    ):
        raise ValueError(f"covariance must be a finite symmetric {size}×{size} matrix: {rows}")
    return tuple(map(tuple, matrix.tolist()))
