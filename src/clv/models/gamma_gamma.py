"""Gamma-Gamma model of spend per transaction (Fader & Hardie 2013): lifetimes' objective,
maximized with its exact gradient (and its exact Hessian for the standard errors) in numpy.

Fitted on repeat buyers (``frequency > 0``) with positive mean repeat spend, the only customers
for whom the model's likelihood is defined. The model assumes that spend per transaction is
independent of purchase frequency; a :class:`SpendCorrelationWarning` is issued when the Pearson
correlation between the two exceeds 0.3 in absolute value among those customers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import digamma, gammaln, polygamma

from clv._lifetimes import fit_with_retry
from clv.errors import ClvWarning, ModelFitError
from clv.models.optimize import inverse_information, saved_covariance, standard_errors

#: |Pearson r| between frequency and spend above which the independence assumption is flagged.
CORRELATION_LIMIT = 0.3


class SpendCorrelationWarning(ClvWarning):
    """Frequency and spend per transaction are correlated; Gamma-Gamma assumes they are not."""


@dataclass(frozen=True)
class SpendModel:
    """A fitted Gamma-Gamma spend model.

    Parameters
    ----------
    params : dict
        ``p``, ``q``, ``v`` (the papers' γ), as lifetimes names them.
    n_customers : int
        Repeat buyers with positive spend that the model was fitted on.
    frequency_spend_correlation : float
        Pearson correlation of frequency and mean repeat spend among them.
    log_likelihood : float
    penalizer : float
    standard_errors : dict
        Of ``p, q, v`` (delta method from the log parameters; empty when unknown).
    covariance : tuple
        Covariance of ``log p, log q, log v``: the inverse observed information of the
        unpenalized likelihood at the fit (empty when it is not positive definite).
    """

    params: dict[str, float]
    n_customers: int
    frequency_spend_correlation: float
    log_likelihood: float = float("nan")
    penalizer: float = 0.0
    standard_errors: dict[str, float] = field(default_factory=dict)
    covariance: tuple[tuple[float, ...], ...] = ()

    #: Parameter names in the covariance's order.
    names: ClassVar[tuple[str, str, str]] = ("p", "q", "v")

    @property
    def population_mean(self) -> float:
        """Expected spend per transaction of a customer with no repeat history: p·v / (q − 1)."""
        p, q, v = self.params["p"], self.params["q"], self.params["v"]
        return p * v / (q - 1.0) if q > 1.0 else float("nan")

    def expected_average_value(self, frequency: Any, monetary_value: Any) -> np.ndarray:
        """Conditional expected spend per transaction (Fader & Hardie 2013, eq. 5).

        A weighted mean of the population mean and the customer's own mean repeat spend, the
        weight on the latter being ``p·x / (p·x + q − 1)``; customers with ``x = 0`` (or a
        non-positive mean) get the population mean.
        """
        x = np.asarray(frequency, dtype=float)
        m = np.asarray(monetary_value, dtype=float)
        p, q = self.params["p"], self.params["q"]
        usable = (x > 0) & (m > 0)
        weight = np.where(usable, p * x / (p * x + q - 1.0), 0.0)
        return (1.0 - weight) * self.population_mean + weight * np.where(usable, m, 0.0)

    def rate_moments(self, frequency: Any, monetary_value: Any) -> tuple[np.ndarray, np.ndarray]:
        """``E[1/ν]`` and ``E[1/ν²]`` of each customer's posterior spend rate.

        A customer's transactions are Gamma(p, ν) with ν ~ Gamma(q, v); after ``x`` repeat
        transactions of mean ``m``, ν ~ Gamma(p·x + q, v + x·m) (Fader & Hardie 2013), so the
        mean spend per transaction p/ν has mean ``p·E[1/ν]`` (:meth:`expected_average_value`).
        ``E[1/ν²]`` is infinite when ``p·x + q ≤ 2``. Customers without a usable history get
        the prior (x = 0), as in :meth:`expected_average_value`.
        """
        x = np.asarray(frequency, dtype=float)
        m = np.asarray(monetary_value, dtype=float)
        p, q, v = (self.params[n] for n in self.names)
        usable = (x > 0) & (m > 0)
        shape = np.where(usable, p * x + q, q)
        rate = np.where(usable, v + x * np.where(usable, m, 0.0), v)
        with np.errstate(divide="ignore", invalid="ignore"):
            first = np.where(shape > 1.0, rate / (shape - 1.0), np.inf)
            second = np.where(shape > 2.0, rate**2 / ((shape - 1.0) * (shape - 2.0)), np.inf)
        return first, second

    @property
    def log_params(self) -> np.ndarray:
        """``log p, log q, log v`` (the covariance's scale)."""
        return np.log([self.params[n] for n in self.names])

    def with_log_params(self, log_params: np.ndarray) -> SpendModel:
        """The same model at other (log) parameters."""
        values = np.exp(np.asarray(log_params, dtype=float)).tolist()
        return replace(self, params=dict(zip(self.names, values, strict=True)))

    def to_dict(self) -> dict[str, Any]:
        """Return the model as JSON-compatible values."""
        return {
            "kind": "gamma_gamma",
            "params": {k: float(v) for k, v in self.params.items()},
            "n_customers": int(self.n_customers),
            "frequency_spend_correlation": float(self.frequency_spend_correlation),
            "log_likelihood": float(self.log_likelihood),
            "penalizer": float(self.penalizer),
            "standard_errors": {k: float(v) for k, v in self.standard_errors.items()},
            "covariance": [[float(v) for v in row] for row in self.covariance],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpendModel:
        """Rebuild a model from :meth:`to_dict` output."""
        if data.get("kind") != "gamma_gamma":
            raise ValueError(f"unknown spend model kind {data.get('kind')!r}")
        params = {n: float(data["params"][n]) for n in ("p", "q", "v")}
        if not all(np.isfinite(v) and v > 0 for v in params.values()):
            raise ValueError(f"Gamma-Gamma parameters must be positive and finite: {params}")
        return cls(
            params=params,
            n_customers=int(data["n_customers"]),
            frequency_spend_correlation=float(data["frequency_spend_correlation"]),
            log_likelihood=float(data.get("log_likelihood", float("nan"))),
            penalizer=float(data.get("penalizer", 0.0)),
            standard_errors={k: float(v) for k, v in data.get("standard_errors", {}).items()},
            covariance=saved_covariance(data.get("covariance", ()), len(cls.names)),
        )


#: As for the purchase models (:data:`clv.models.fitting.MIN_PARAMETER`): below it, a parameter
#: has run to the boundary of its space and the fit is treated as not converged.
MIN_PARAMETER = 1e-8


class _Likelihood:
    """The Gamma-Gamma log-likelihood of repeat buyers (Fader & Hardie 2013, eq. 1a: the same
    function as lifetimes' ``GammaGammaFitter``), with its exact gradient and Hessian.

    Per customer, ``ll = lnΓ(px+q) − lnΓ(px) − lnΓ(q) + q·ln v + (px−1)·ln m + px·ln x
    − (px+q)·ln(xm+v)``. The gamma-function terms depend on ``x`` alone, so they are summed
    over the distinct frequencies (a few dozen); the rest needs one ``ln(xm+v)`` per customer
    and sums taken once — an evaluation costs a pass over the customers, not a tracer's.
    """

    def __init__(self, x: np.ndarray, m: np.ndarray) -> None:
        self.n = float(len(x))
        self.x = x
        self.xm = x * m
        self.distinct, counts = np.unique(x, return_counts=True)
        self.counts = counts.astype(float)
        self.sum_x_log_m = float(x @ np.log(m))
        self.sum_log_m = float(np.log(m).sum())
        self.sum_x_log_x = float(x @ np.log(x))

    def total(self, params: np.ndarray, order: int = 1) -> tuple[float, np.ndarray, np.ndarray]:
        """Total log-likelihood at ``params = (p, q, v)``, its gradient, and (``order`` 2)
        its Hessian in ``p, q, v`` (else zeros)."""
        p, q, v = params
        u, c = self.distinct, self.counts
        shape = p * u + q
        rate = self.xm + v
        log_rate = np.log(rate)
        ll = (
            c @ (gammaln(shape) - gammaln(p * u))
            - self.n * gammaln(q)
            + self.n * q * np.log(v)
            + p * self.sum_x_log_m
            - self.sum_log_m
            + p * self.sum_x_log_x
            - (p * self.x + q) @ log_rate
        )
        psi_shape, psi_pu = digamma(shape), digamma(p * u)
        grad = np.array(
            [
                (c * u) @ (psi_shape - psi_pu)
                + self.sum_x_log_m
                + self.sum_x_log_x
                - self.x @ log_rate,
                c @ psi_shape - self.n * digamma(q) + self.n * np.log(v) - log_rate.sum(),
                self.n * q / v - ((p * self.x + q) / rate).sum(),
            ]
        )
        hess = np.zeros((3, 3))
        if order >= 2:
            tri_shape, tri_pu = polygamma(1, shape), polygamma(1, p * u)
            inverse = 1.0 / rate
            hess[0, 0] = (c * u**2) @ (tri_shape - tri_pu)
            hess[0, 1] = (c * u) @ tri_shape
            hess[0, 2] = -(self.x @ inverse)
            hess[1, 1] = c @ tri_shape - self.n * polygamma(1, q)
            hess[1, 2] = self.n / v - inverse.sum()
            hess[2, 2] = -self.n * q / v**2 + ((p * self.x + q) @ inverse**2)
            hess = np.triu(hess) + np.triu(hess, 1).T
        return float(ll), grad, hess

    def objective(self, log_params: np.ndarray, penalizer: float) -> tuple[float, np.ndarray]:
        """lifetimes' objective in log parameters: mean negative log-likelihood plus
        ``penalizer × (p² + q² + v²)``, and its gradient."""
        params = np.exp(log_params)
        ll, grad, _ = self.total(params)
        value = -ll / self.n + penalizer * float(params @ params)
        return value, -grad * params / self.n + 2.0 * penalizer * params**2

    def log_hessian(self, log_params: np.ndarray) -> np.ndarray:
        """Hessian of the total negative log-likelihood in log parameters (unpenalized)."""
        params = np.exp(log_params)
        _, grad, hess = self.total(params, order=2)
        return -(np.outer(params, params) * hess + np.diag(params * grad))


#: Largest |gradient| of the mean objective (per log parameter) at which a fit that BFGS ended
#: for precision loss is taken as converged ...
GRADIENT_TOLERANCE = 1e-5
#: ... when its Hessian there is also positive definite with eigenvalues no further apart than
#: this ratio (a ridge on which p → ∞ and v → 0, spend per purchase fixed, has ~1e-9).
MIN_CURVATURE_RATIO = 1e-6


def _at_a_strict_minimum(likelihood: _Likelihood, result: Any, penalizer: float) -> bool:
    """Whether a BFGS run that stopped for precision loss (its line search could not improve
    on rounding) stopped at a well-identified minimum: the gradient vanishes and the exact
    Hessian is positive definite and not nearly singular."""
    if not np.all(np.abs(result.jac) <= GRADIENT_TOLERANCE):
        return False
    params = np.exp(result.x)
    with np.errstate(all="ignore"):
        hessian = likelihood.log_hessian(result.x) / likelihood.n
    hessian += np.diag(4.0 * penalizer * params**2)
    if not np.all(np.isfinite(hessian)):
        return False
    eigenvalues = np.linalg.eigvalsh(hessian)
    return bool(eigenvalues[0] > MIN_CURVATURE_RATIO * eigenvalues[-1] > 0)


def _fit_once(likelihood: _Likelihood, penalizer: float) -> np.ndarray:
    """Log parameters of one fit (BFGS from lifetimes' start, at its tolerance)."""
    with np.errstate(all="ignore"):
        result = minimize(
            likelihood.objective, np.full(3, 0.1), args=(penalizer,), jac=True, tol=1e-7
        )
    values = np.exp(result.x)
    found = dict(zip(SpendModel.names, values.tolist(), strict=True))
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ArithmeticError(f"the optimizer diverged ({result.message}) at {found}")
    if not (result.success or _at_a_strict_minimum(likelihood, result, penalizer)):
        raise ArithmeticError(f"the optimizer did not converge ({result.message}) at {found}")
    if found["q"] <= 1.0:
        raise ArithmeticError(
            f"q = {found['q']:.4g} ≤ 1: the fitted spend distribution has no finite "
            "mean, so no expected spend (the amounts are too dispersed for Gamma-Gamma)"
        )
    if np.any(values < MIN_PARAMETER):
        raise ArithmeticError(
            f"a parameter ran to the edge of its space (below {MIN_PARAMETER:g}) at {found}"
        )
    return result.x


def fit_spend_model(
    rfm: pd.DataFrame, penalizer: float = 0.0, retry_penalizer: float = 0.001
) -> SpendModel:
    """Fit Gamma-Gamma on the repeat buyers of an RFM table.

    Parameters
    ----------
    rfm : pandas.DataFrame
        Columns ``frequency`` and ``monetary_value`` (mean repeat spend).
    penalizer, retry_penalizer : float
        L2 penalizer of the first attempt and of the single retry.

    Returns
    -------
    SpendModel

    Raises
    ------
    ModelFitError
        With fewer than 2 usable customers, or when neither attempt converges.

    Warns
    -----
    SpendCorrelationWarning
        When |Pearson(frequency, monetary_value)| > 0.3 among the usable customers.
    """
    usable = rfm[(rfm["frequency"] > 0) & (rfm["monetary_value"] > 0)]
    x = usable["frequency"].to_numpy(dtype=float)
    m = usable["monetary_value"].to_numpy(dtype=float)
    if len(usable) < 2:
        raise ModelFitError(
            f"Gamma-Gamma needs repeat buyers with positive spend; the data have {len(usable)} "
            f"of {len(rfm):,} customers. Use a longer calibration period, or train without amounts."
        )
    corr = float(np.corrcoef(x, m)[0, 1]) if x.std() > 0 and m.std() > 0 else 0.0
    if abs(corr) > CORRELATION_LIMIT:
        warnings.warn(
            f"Frequency and mean spend are correlated (Pearson r = {corr:.2f}, |r| > "
            f"{CORRELATION_LIMIT}); Gamma-Gamma assumes independence, so expected spend and CLV "
            "may be biased.",
            SpendCorrelationWarning,
            stacklevel=2,
        )
    likelihood = _Likelihood(x, m)
    log_params, coef = fit_with_retry(
        lambda coef: _fit_once(likelihood, coef),
        [penalizer, max(retry_penalizer, penalizer * 10)],
        what="Gamma-Gamma",
        data=f"{len(usable):,} repeat buyers (mean spend {m.mean():,.2f}, max {m.max():,.2f})",
        advice="Check the amount column for outliers or try a larger train.penalizer.",
    )
    with np.errstate(all="ignore"):
        log_likelihood = likelihood.total(np.exp(log_params))[0]
        covariance = inverse_information(likelihood.log_hessian(log_params))
    params = np.exp(log_params)
    return SpendModel(
        params=dict(zip(SpendModel.names, params.tolist(), strict=True)),
        n_customers=len(usable),
        frequency_spend_correlation=corr,
        log_likelihood=log_likelihood,
        penalizer=coef,
        standard_errors=standard_errors(covariance, params, SpendModel.names),
        covariance=() if covariance is None else tuple(map(tuple, covariance.tolist())),
    )
