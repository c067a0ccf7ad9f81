"""The one pattern-weighted maximum-likelihood fit every purchase model uses: starts, the
optimizer, the limits it may stop at, and the standard errors from the inverse information."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy.optimize import minimize


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


#: A log-likelihood change too small to matter: ``FLAT`` or, on a large log, ``FLAT_SHARE`` of
#: the log-likelihood (a gamma function of shapes near 1e8 is computed to about 0.02 units on
#: 5,000 customers).
FLAT, FLAT_SHARE = 0.01, 1e-6


def flat(log_likelihood: float) -> float:
    """How small a change of ``log_likelihood`` is too small to matter (:data:`FLAT`)."""
    return max(FLAT, FLAT_SHARE * abs(log_likelihood))


#: A mixing distribution's shapes that ran past this are on the ridge to its point-mass limit:
#: a fit there is shipped scaled back to it (the same ratio; :mod:`clv.models.limits`), where
#: the scores are the limit's to well within :data:`FLAT` and of a size the closed forms handle
#: exactly, and MBG/CNBD-k's search fit beyond it does not stand in for a stalled refinement.
SHAPE_CAP = 1e4


#: The shape r of the second start of :func:`fit_patterns` (rates that barely differ).
HOMOGENEOUS_START = 100.0

#: Gradient tolerance of a warm start. At an optimum already found (MBG/CNBD-k's k = 1 from
#: MBG/NBD's fit) the gradient is ~4e-9, all that rounding allows, and BFGS with 1e-10 spent 35
#: evaluations of failed line searches before stopping there; the log-likelihood changes by
#: less than 1e-12 between the two tolerances.
WARM_GTOL = 1e-8


def fit_patterns(
    process: Likelihood,
    data: Any,
    penalizer: float = 0.0,
    start: np.ndarray | None = None,
    tol: float | None = None,
    start_params: Mapping[str, float] | None = None,
    covariance: bool = True,
    maxiter: int = 1000,
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
    covariance : bool
        Whether to compute the parameters' covariance (``2 × parameters`` gradients more);
        without it the fit has no standard errors.
    maxiter : int
        Most BFGS steps of each start.

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

    def run(x: np.ndarray, gtol: float) -> Any:
        with np.errstate(all="ignore"):
            return minimize(
                objective, x, jac=True, method="BFGS", options={"gtol": gtol, "maxiter": maxiter}
            )

    result = run(x0, tol if start is None else max(tol, WARM_GTOL))
    second = process.analytic_gradient and {"r", "alpha"} <= set(names)
    if start is None and second and result.x[names.index("r")] > 0:
        alt = _homogeneous_start(x0, names, scaled)
        other = None if alt is None else run(alt, tol)
        if other is not None and np.isfinite(other.fun) and other.fun < result.fun - 1e-9:
            result = other
    theta = np.where(free, result.x, np.exp(np.where(free, 0.0, result.x)))
    # Rescaling time adds a constant to the log-likelihood and shifts the log of each time (or
    # rate) parameter: the Hessian in log parameters is the same on the scaled data.
    log_covariance = _log_covariance(process, result.x, scaled, prepared) if covariance else None
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
        standard_errors=standard_errors(log_covariance, theta, names, process.unconstrained),
        covariance=() if log_covariance is None else tuple(map(tuple, log_covariance.tolist())),
        converged=bool(result.success)
        or _stalled_at_optimum(result, tol, log_covariance is not None or not covariance),
        message=str(result.message),
    )


def _homogeneous_start(x0: np.ndarray, names: tuple[str, ...], data: Any) -> np.ndarray | None:
    """A second start where purchase rates barely differ (r = 100, r/α the mean rate).

    The likelihood can have a second mode there: a log of equal buyers fitted from the default
    start stops at a heterogeneous local maximum 400 log-likelihood units below it
    (benchmarks/zoo.py). When the first fit already finds rates that differ little (r > 1:
    their coefficient of variation below 1), the fit starts again here and keeps the better
    objective; a heterogeneous log (CDNOW: r ≈ 0.25) is fitted once, and so is a model without
    an analytic gradient (Pareto/NBD's closed form: the second start tripled its 15 s there)."""
    rate = float(np.sum(data.weight * data.x) / np.sum(data.weight * data.T))
    if not (np.isfinite(rate) and rate > 0):
        return None
    alt = x0.copy()
    alt[names.index("r")] = np.log(HOMOGENEOUS_START)
    alt[names.index("alpha")] = np.log(HOMOGENEOUS_START / rate)
    return alt


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


def _stalled_at_optimum(result, tol: float, definite: bool) -> bool:
    """BFGS' "precision loss" at a point whose gradient is already tiny is a converged fit when
    the point is a maximum (``definite``: the Hessian is positive definite, or was not asked
    for). A flat ridge running off to infinity (e.g. BG/NBD's a and b in the thousands, which
    the data do not identify) also stalls with a tiny gradient; its Hessian is singular, and it
    is not a converged fit."""
    return bool(
        definite and np.all(np.isfinite(result.x)) and np.max(np.abs(result.jac)) < max(tol, 1e-6)
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
