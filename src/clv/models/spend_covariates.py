"""Gamma-Gamma with static covariates: spend per transaction scaled by ``exp(δᵀz)``.

A customer's transactions are Gamma(p, ν) with ν ~ Gamma(q, v); with attributes ``z`` her
scale is ``v·e^(δᵀz)``, so every spend quantity — the population mean ``p·v / (q − 1)``, the
conditional expected spend, its posterior — is the plain model's at that scale, and a
customer's expected spend per transaction is multiplied by ``e^(δᵀz)`` before her own history
is weighed in. (CLVTools, BTYDplus and pymc-marketing have no spend covariates.)

The fit maximizes the Gamma-Gamma likelihood (:class:`clv.models.gamma_gamma._Likelihood`,
exact gradient) summed over the groups of repeat buyers with the same covariate vector, the
chain rule giving the coefficients' slopes; standard errors from the Hessian of differences of
that gradient. A customer is scored by the plain :class:`~clv.models.gamma_gamma.SpendModel` of
her group (:meth:`CovariateSpendModel.for_group`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from clv._lifetimes import fit_with_retry
from clv.models.covariates import CovariateDesign, saved_coefficients
from clv.models.gamma_gamma import MIN_PARAMETER, SpendModel, _Likelihood
from clv.models.optimize import inverse_information, saved_covariance, standard_errors

#: The ``kind`` of a saved spend model with covariates.
KIND = "gamma_gamma_covariates"


@dataclass(frozen=True)
class CovariateSpendModel:
    """A fitted Gamma-Gamma spend model with static covariates.

    Parameters
    ----------
    params : dict
        ``p``, ``q``, ``v`` at ``z = 0`` (every reference level, numeric attributes 0).
    coefficients : dict
        ``spend.<column>`` → δ.
    design : CovariateDesign
        Its ``spend`` attributes.
    n_customers : int
    frequency_spend_correlation : float
    log_likelihood : float
    penalizer : float
    l2 : float
        L2 penalty on the coefficients (``l2 · Σδ²`` on the mean log-likelihood).
    standard_errors : dict
        Of the parameters and coefficients.
    covariance : tuple
        Of ``log p, log q, log v`` then the coefficients.
    """

    params: dict[str, float]
    coefficients: dict[str, float]
    design: CovariateDesign
    n_customers: int
    frequency_spend_correlation: float
    log_likelihood: float = float("nan")
    penalizer: float = 0.0
    l2: float = 0.0
    standard_errors: dict[str, float] = field(default_factory=dict)
    covariance: tuple[tuple[float, ...], ...] = ()

    @property
    def log_params(self) -> np.ndarray:
        """``log p, log q, log v``, then the coefficients (the covariance's order)."""
        base = np.log([self.params[n] for n in SpendModel.names])
        return np.concatenate([base, [self.coefficients[c] for c in self.design.coefficients]])

    def for_group(self, z: np.ndarray) -> SpendModel:
        """The plain model of customers with covariate vector ``z`` (a row of
        :meth:`CovariateDesign.encode`), its covariance carried over."""
        z = np.asarray(z, dtype=float)
        delta = np.array([self.coefficients[c] for c in self.design.coefficients])
        shift = float(z @ delta) if z.size else 0.0
        covariance: tuple[tuple[float, ...], ...] = ()
        if self.covariance:
            jacobian = np.zeros((3, 3 + z.size))
            jacobian[:, :3] = np.eye(3)
            jacobian[2, 3:] = z
            matrix = jacobian @ np.asarray(self.covariance) @ jacobian.T
            covariance = tuple(map(tuple, matrix.tolist()))
        return SpendModel(
            params={**self.params, "v": self.params["v"] * float(np.exp(shift))},
            n_customers=self.n_customers,
            frequency_spend_correlation=self.frequency_spend_correlation,
            log_likelihood=self.log_likelihood,
            penalizer=self.penalizer,
            covariance=covariance,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible values (no pickle)."""
        return {
            "kind": KIND,
            "params": {k: float(v) for k, v in self.params.items()},
            "coefficients": {k: float(v) for k, v in self.coefficients.items()},
            "covariates": self.design.to_dict(),
            "n_customers": int(self.n_customers),
            "frequency_spend_correlation": float(self.frequency_spend_correlation),
            "log_likelihood": float(self.log_likelihood),
            "penalizer": float(self.penalizer),
            "l2": float(self.l2),
            "standard_errors": {k: float(v) for k, v in self.standard_errors.items()},
            "covariance": [[float(v) for v in row] for row in self.covariance],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CovariateSpendModel:
        """Rebuild from :meth:`to_dict` output; checks names and values."""
        plain = SpendModel.from_dict({**data, "kind": "gamma_gamma", "covariance": []})
        design, coefficients = saved_coefficients(data, "spend")
        return cls(
            params=plain.params,
            coefficients=coefficients,
            design=design,
            n_customers=plain.n_customers,
            frequency_spend_correlation=plain.frequency_spend_correlation,
            log_likelihood=plain.log_likelihood,
            penalizer=plain.penalizer,
            l2=float(data.get("l2", 0.0)),
            standard_errors={k: float(v) for k, v in data.get("standard_errors", {}).items()},
            covariance=saved_covariance(data.get("covariance", ()), 3 + len(coefficients)),
        )


def spend_model_from_dict(data: dict[str, Any]) -> SpendModel | CovariateSpendModel:
    """Rebuild a spend model, with or without covariates, from its ``to_dict`` output."""
    return (
        CovariateSpendModel.from_dict(data)
        if data.get("kind") == KIND
        else SpendModel.from_dict(data)
    )


class _GroupedLikelihood:
    """The Gamma-Gamma log-likelihood over groups of repeat buyers with the same covariate
    vector, in ``(log p, log q, log v, δ)``: group g has ``log v_g = log v + δᵀz_g``."""

    def __init__(self, x: np.ndarray, m: np.ndarray, z: np.ndarray) -> None:
        self.z, which = np.unique(z, axis=0, return_inverse=True)
        which = np.ravel(which)
        self.groups = [_Likelihood(x[which == g], m[which == g]) for g in range(len(self.z))]
        self.n = float(len(x))

    def total(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Total log-likelihood and its gradient in ``theta``."""
        ll, grad = 0.0, np.zeros(len(theta))
        for z, group in zip(self.z, self.groups, strict=True):
            params = np.exp([theta[0], theta[1], theta[2] + z @ theta[3:]])
            value, slope, _ = group.total(params)
            ll += value
            chain = slope * params  # d/d log p, log q, log v_g
            grad[:3] += chain
            grad[3:] += chain[2] * z
        return ll, grad

    def objective(self, theta: np.ndarray, penalizer: float, l2: float) -> tuple[float, np.ndarray]:
        """Mean negative log-likelihood + ``penalizer · (p² + q² + v²)`` + ``l2 · Σδ²``."""
        ll, grad = self.total(theta)
        params, delta = np.exp(theta[:3]), theta[3:]
        value = -ll / self.n + penalizer * float(params @ params) + l2 * float(delta @ delta)
        slope = -grad / self.n
        slope[:3] += 2.0 * penalizer * params**2
        slope[3:] += 2.0 * l2 * delta
        return value, slope

    def hessian(self, theta: np.ndarray, step: float = 1e-5) -> np.ndarray:
        """Hessian of the total negative log-likelihood (central differences of the exact
        gradient)."""
        k = len(theta)
        out = np.empty((k, k))
        for i in range(k):
            h = np.zeros(k)
            h[i] = step
            out[:, i] = -(self.total(theta + h)[1] - self.total(theta - h)[1]) / (2 * step)
        return out


def fit_spend_covariates(
    rfm: pd.DataFrame,
    design: CovariateDesign,
    z: np.ndarray,
    plain: SpendModel,
    penalizer: float = 0.0,
    retry_penalizer: float = 0.001,
    l2: float = 0.0,
) -> CovariateSpendModel:
    """Fit Gamma-Gamma with covariates on the repeat buyers of an RFM table.

    Parameters
    ----------
    rfm : pandas.DataFrame
        ``frequency`` and ``monetary_value`` per customer.
    design : CovariateDesign
        With ``spend`` attributes.
    z : numpy.ndarray
        ``design.encode`` of the same customers, row for row.
    plain : SpendModel
        The fit without covariates on the same customers: the start (coefficients 0).
    penalizer, retry_penalizer : float
        lifetimes' L2 penalizer on ``p, q, v``: first attempt and retry.
    l2 : float
        L2 penalty on the coefficients.

    Raises
    ------
    ModelFitError
        When neither attempt converges to finite parameters with ``q > 1``.
    """
    usable = ((rfm["frequency"] > 0) & (rfm["monetary_value"] > 0)).to_numpy()
    x = rfm["frequency"].to_numpy(dtype=float)[usable]
    m = rfm["monetary_value"].to_numpy(dtype=float)[usable]
    likelihood = _GroupedLikelihood(x, m, np.asarray(z, dtype=float)[usable])
    k = len(design.coefficients)
    start = np.concatenate([plain.log_params, np.zeros(k)])

    def attempt(coef: float) -> np.ndarray:
        with np.errstate(all="ignore"):
            result = minimize(
                likelihood.objective,
                start,
                args=(coef, l2),
                jac=True,
                method="BFGS",
                options={"gtol": 1e-8, "maxiter": 1000},
            )
        values = np.exp(result.x[:3])
        converged = result.success or np.max(np.abs(result.jac)) < 1e-6
        if not converged or not np.all(np.isfinite(result.x)) or np.any(values < MIN_PARAMETER):
            raise ArithmeticError(
                f"the optimizer did not converge ({result.message}) at {result.x}"
            )
        if values[1] <= 1.0:
            raise ArithmeticError(f"q = {values[1]:.4g} ≤ 1: no finite expected spend")
        return result.x

    theta, coef = fit_with_retry(
        attempt,
        [penalizer, max(retry_penalizer, penalizer * 10)],
        what="Gamma-Gamma with covariates",
        data=f"{len(x):,} repeat buyers in {len(likelihood.z)} covariate groups",
        advice="Try covariates.l2_spend, fewer spend covariates, or none.",
    )
    with np.errstate(all="ignore"):
        log_likelihood = likelihood.total(theta)[0]
        covariance = inverse_information(likelihood.hessian(theta))
    names = (*SpendModel.names, *design.coefficients)
    values = np.concatenate([np.exp(theta[:3]), theta[3:]])
    return CovariateSpendModel(
        params=dict(zip(SpendModel.names, np.exp(theta[:3]).tolist(), strict=True)),
        coefficients=dict(zip(design.coefficients, theta[3:].tolist(), strict=True)),
        design=design,
        n_customers=len(x),
        frequency_spend_correlation=plain.frequency_spend_correlation,
        log_likelihood=float(log_likelihood),
        penalizer=coef,
        l2=l2,
        standard_errors=standard_errors(covariance, values, names, design.coefficients),
        covariance=() if covariance is None else tuple(map(tuple, covariance.tolist())),
    )


def fit_configured(
    rfm: pd.DataFrame,
    plain: SpendModel,
    settings: Mapping[str, Any],
    penalizer: float = 0.0,
    retry_penalizer: float = 0.001,
) -> CovariateSpendModel:
    """:func:`fit_spend_covariates` with the design the config's ``covariates`` section names
    (``spend`` attributes, their categorical ones and reference levels, ``l2_spend``), learned
    from ``rfm``'s attribute columns."""
    spend = list(settings.get("spend", ()))
    design = CovariateDesign.learn(
        rfm,
        (),
        (),
        [c for c in settings.get("categorical", ()) if c in spend],
        {k: v for k, v in (settings.get("reference") or {}).items() if k in spend},
        spend=spend,
    )
    z = design.encode(rfm, rfm.get("customer_id", None))
    return fit_spend_covariates(
        rfm, design, z, plain, penalizer, retry_penalizer, float(settings.get("l2_spend", 0.0))
    )
