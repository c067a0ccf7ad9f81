"""Purchase models with static covariates: the grouped likelihood with its gradient by the chain
rule, the fit, and the fitted model scored group by group."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from clv.data.compact import CUSTOMER
from clv.errors import DataValidationError
from clv.models.base import PurchaseProcess, fit_patterns
from clv.models.covariates import MAX_GROUPS, PROCESSES, CovariateDesign, saved_coefficients
from clv.models.fitted import PurchaseModel
from clv.models.optimize import saved_covariance
from clv.models.patterns import Patterns, rfm_patterns
from clv.models.registry import WITH_COVARIATES, base_kind, display_name, purchase_process


@dataclass(frozen=True)
class GroupedPatterns:
    """Customers as patterns within each distinct covariate vector.

    Parameters
    ----------
    z : numpy.ndarray
        The distinct covariate vectors, shape ``(groups, columns)``.
    groups : tuple of Patterns
        The patterns of each group's customers.
    """

    z: np.ndarray
    groups: tuple[Patterns, ...]

    @classmethod
    def of(cls, rfm: pd.DataFrame, z: np.ndarray) -> GroupedPatterns:
        """Group an RFM table (``frequency, recency, T``) by its rows' covariate vectors."""
        keys, which = np.unique(z, axis=0, return_inverse=True)
        if len(keys) > MAX_GROUPS:
            raise DataValidationError(
                f"The covariates take {len(keys):,} distinct combinations (at most "
                f"{MAX_GROUPS:,}): bin a continuous attribute, or list it as categorical."
            )
        which = np.ravel(which)
        groups = tuple(
            Patterns.from_table(rfm_patterns(rfm.iloc[np.flatnonzero(which == g)]))
            for g in range(len(keys))
        )
        return cls(keys, groups)

    @cached_property
    def T(self) -> np.ndarray:  # noqa: N802 - the models' name for a customer's age
        """Every pattern's age (for the time scale of the fit)."""
        return np.concatenate([g.T for g in self.groups])

    @cached_property
    def total(self) -> float:
        """Number of customers."""
        return float(sum(g.total for g in self.groups))

    def scaled(self, factor: float) -> GroupedPatterns:
        """The same groups with time multiplied by ``factor``."""
        return GroupedPatterns(self.z, tuple(g.scaled(factor) for g in self.groups))


def link_matrix(process: PurchaseProcess, design: CovariateDesign) -> np.ndarray:
    """How each coefficient moves each log parameter per unit of its column: shape
    ``(parameters, coefficients)``, entries the links' signs or 0."""
    links = np.zeros((len(process.params), len(design.coefficients)))
    j = 0
    for name in PROCESSES:
        for _ in design.process_columns(name):
            for param, sign in process.covariate_links.get(name, ()):
                links[process.params.index(param), j] = sign
            j += 1
    return links


def column_index(design: CovariateDesign) -> np.ndarray:
    """For each coefficient, the index of its column in :meth:`CovariateDesign.encode`."""
    columns = design.columns
    return np.array(
        [columns.index(c) for p in PROCESSES for c in design.process_columns(p)], dtype=int
    )


class CovariateProcess:
    """A purchase model with covariates, as :func:`~clv.models.optimize.fit_patterns` fits it.

    Parameters are the model's (positive, fitted in logs) then the coefficients (fitted as
    they are). The objective is the model's mean negative log-likelihood over the groups at
    each group's parameters, plus lifetimes' ``penalizer · Σθ²`` on the model's parameters and
    ``l2 · Σγ²`` per process on the coefficients; its gradient, where the model has one, by
    the chain rule (a group's log parameters are linear in the coefficients).
    """

    def __init__(
        self,
        base: PurchaseProcess,
        design: CovariateDesign,
        l2: Mapping[str, float] | None = None,
    ) -> None:
        if not base.covariate_links:
            raise ValueError(f"{base.name} takes no covariates")
        self.base = base
        self.design = design
        self.params = (*base.params, *design.coefficients)
        self.time_params = base.time_params
        self.rate_params = base.rate_params
        self.unconstrained = design.coefficients
        self.start = base.start
        self.gtol = base.gtol
        self.analytic_gradient = base.analytic_gradient
        self.links = link_matrix(base, design)
        self.columns = column_index(design)
        l2 = dict(l2 or {})
        self.l2 = np.array([l2.get(c.split(".", 1)[0], 0.0) for c in design.coefficients])

    def group_log_params(self, log_params: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Log parameters of each covariate vector (rows of ``z``): ``(len(z), parameters)``."""
        k = len(self.base.params)
        gamma = log_params[k:]
        return log_params[:k] + (z[:, self.columns] * gamma) @ self.links.T

    def prepare(self, data: GroupedPatterns) -> list[Any]:
        return [self.base.prepare(g) for g in data.groups]

    def objective(
        self, log_params: np.ndarray, data: GroupedPatterns, penalizer: float, prepared: Any
    ) -> tuple[float, np.ndarray | None]:
        k = len(self.base.params)
        per_group = self.group_log_params(log_params, data.z)
        value, gradient = 0.0, np.zeros(len(log_params))
        for g, group in enumerate(data.groups):
            share = group.total / data.total
            f, grad = self.base.objective(per_group[g], group, 0.0, prepared[g])
            value += share * f
            if grad is not None:
                gradient[:k] += share * grad
                gradient[k:] += share * (self.links.T @ grad) * data.z[g, self.columns]
        theta, gamma = np.exp(log_params[:k]), log_params[k:]
        value += penalizer * float(theta @ theta) + float(self.l2 @ gamma**2)
        if not self.analytic_gradient:
            return value, None
        gradient[:k] += 2.0 * penalizer * theta**2
        gradient[k:] += 2.0 * self.l2 * gamma
        return value, gradient

    def log_likelihood(self, params: dict[str, float], data: GroupedPatterns) -> float:
        log_params = np.array(
            [np.log(params[n]) for n in self.base.params]
            + [params[n] for n in self.design.coefficients]
        )
        per_group = np.exp(self.group_log_params(log_params, data.z))
        return float(
            sum(
                self.base.log_likelihood(dict(zip(self.base.params, row, strict=True)), group)
                for row, group in zip(per_group, data.groups, strict=True)
            )
        )


@dataclass(frozen=True)
class CovariateModel:
    """A fitted purchase model with static covariates.

    Parameters
    ----------
    kind : str
        The candidate's name: the model's config name with ``_covariates``.
    params : dict
        The model's parameters at ``z = 0`` (every reference level, numeric attributes 0).
    coefficients : dict
        ``purchase.<column>`` and ``dropout.<column>`` → γ.
    design : CovariateDesign
    time_unit : str
    log_likelihood : float
        Of the fitting data (no penalty).
    penalizer : float
        lifetimes' L2 penalizer on the model's parameters.
    l2 : dict
        The coefficients' L2 penalty per process.
    standard_errors : dict
        Of every parameter and coefficient (empty when the Hessian is not positive definite).
    covariance : tuple
        Of the log parameters then the coefficients (the inverse observed information).
    """

    kind: str
    params: dict[str, float]
    coefficients: dict[str, float]
    design: CovariateDesign
    time_unit: str
    log_likelihood: float = float("nan")
    penalizer: float = 0.0
    l2: dict[str, float] = field(default_factory=dict)
    standard_errors: dict[str, float] = field(default_factory=dict)
    covariance: tuple[tuple[float, ...], ...] = ()

    @cached_property
    def process(self) -> CovariateProcess:
        """The model's mathematics with the covariates."""
        return CovariateProcess(purchase_process(base_kind(self.kind)), self.design, self.l2)

    @property
    def name(self) -> str:
        """Display name, e.g. ``Pareto/NBD + covariates``."""
        return display_name(self.kind)

    @property
    def log_params(self) -> np.ndarray:
        """The parameters' logs, then the coefficients (the covariance's order)."""
        base = np.log([self.params[n] for n in self.process.base.params])
        return np.concatenate([base, [self.coefficients[c] for c in self.design.coefficients]])

    def for_group(self, z: np.ndarray) -> PurchaseModel:
        """The plain model of customers with covariate vector ``z`` (one row of
        :meth:`CovariateDesign.encode`), its covariance carried over (the group's log
        parameters are linear in the fitted ones)."""
        process = self.process
        row = np.atleast_2d(np.asarray(z, dtype=float))
        log_params = process.group_log_params(self.log_params, row)[0]
        covariance: tuple[tuple[float, ...], ...] = ()
        if self.covariance:
            k = len(process.base.params)
            jacobian = np.hstack([np.eye(k), process.links * row[0, process.columns]])
            matrix = jacobian @ np.asarray(self.covariance) @ jacobian.T
            covariance = tuple(map(tuple, matrix.tolist()))
        return PurchaseModel(
            kind=base_kind(self.kind),
            params=dict(zip(process.base.params, np.exp(log_params).tolist(), strict=True)),
            time_unit=self.time_unit,
            log_likelihood=self.log_likelihood,
            penalizer=self.penalizer,
            covariance=covariance,
        )

    def most_common(self, frame: pd.DataFrame) -> PurchaseModel:
        """The plain model of the most common covariate vector among ``frame``'s customers
        (what a single-model plot draws)."""
        z = self.design.encode(frame, frame.get(CUSTOMER, None))
        keys, counts = np.unique(z, axis=0, return_counts=True)
        return self.for_group(keys[int(np.argmax(counts))])

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible values (no pickle)."""
        return {
            "kind": self.kind,
            "params": {k: float(v) for k, v in self.params.items()},
            "coefficients": {k: float(v) for k, v in self.coefficients.items()},
            "covariates": self.design.to_dict(),
            "time_unit": self.time_unit,
            "log_likelihood": float(self.log_likelihood),
            "penalizer": float(self.penalizer),
            "l2": {k: float(v) for k, v in self.l2.items()},
            "standard_errors": {k: float(v) for k, v in self.standard_errors.items()},
            "covariance": [[float(v) for v in row] for row in self.covariance],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CovariateModel:
        """Rebuild from :meth:`to_dict` output; checks names and values."""
        kind = data["kind"]
        if not kind.endswith(WITH_COVARIATES):
            raise ValueError(f"a model with covariates is named <model>{WITH_COVARIATES}: {kind}")
        base = PurchaseModel.from_dict({**data, "kind": base_kind(kind), "covariance": []})
        design, coefficients = saved_coefficients(data, "covariate")
        size = len(base.params) + len(coefficients)
        return cls(
            kind=kind,
            params=base.params,
            coefficients=coefficients,
            design=design,
            time_unit=base.time_unit,
            log_likelihood=base.log_likelihood,
            penalizer=base.penalizer,
            l2={k: float(v) for k, v in data.get("l2", {}).items()},
            standard_errors={k: float(v) for k, v in data.get("standard_errors", {}).items()},
            covariance=saved_covariance(data.get("covariance", ()), size),
        )


def fit_covariate_model(
    kind: str,
    rfm: pd.DataFrame,
    z: np.ndarray,
    design: CovariateDesign,
    time_unit: str,
    penalizer: float = 0.0,
    l2: Mapping[str, float] | None = None,
    plain_params: Mapping[str, float] | None = None,
) -> tuple[CovariateModel, bool]:
    """Maximum-likelihood fit of model ``kind`` with covariates.

    Parameters
    ----------
    kind : str
        A model whose ``covariate_links`` are set (BG/NBD, MBG/NBD, Pareto/NBD, GG/NBD).
    rfm : pandas.DataFrame
        ``frequency, recency, T`` per customer.
    z : numpy.ndarray
        :meth:`CovariateDesign.encode` of the same customers, row for row.
    design : CovariateDesign
    time_unit : str
    penalizer : float
        lifetimes' L2 penalizer on the model's parameters.
    l2 : mapping, optional
        L2 penalty of the coefficients per process (``purchase``, ``dropout``).
    plain_params : mapping, optional
        The model's fit without covariates on the same customers, when the caller has it: the
        start (else it is fitted here).

    Returns
    -------
    tuple
        The model, and whether the optimizer converged.
    """
    base = purchase_process(kind)
    process = CovariateProcess(base, design, l2)
    data = GroupedPatterns.of(rfm, np.asarray(z, dtype=float))
    plain = _plain_start(base, rfm, penalizer, plain_params)
    start = np.concatenate([plain, np.zeros(len(design.coefficients))])
    fit = fit_patterns(process, data, penalizer, start=start)
    k = len(base.params)
    names = process.params
    return (
        CovariateModel(
            kind=kind + WITH_COVARIATES,
            params={n: fit.params[n] for n in names[:k]},
            coefficients={n: fit.params[n] for n in names[k:]},
            design=design,
            time_unit=time_unit,
            log_likelihood=fit.log_likelihood,
            penalizer=penalizer,
            l2=dict(l2 or {}),
            standard_errors=fit.standard_errors,
            covariance=fit.covariance,
        ),
        fit.converged,
    )


def _plain_start(
    base: PurchaseProcess,
    rfm: pd.DataFrame,
    penalizer: float,
    plain_params: Mapping[str, float] | None = None,
) -> np.ndarray:
    """Start from the model without covariates (log parameters of the time-rescaled fit,
    fitted here unless the caller has it): the coefficients start at 0, where that fit is the
    optimum."""
    scale = 1.0 / float(rfm["T"].max())
    if plain_params is None:
        plain_params = base.fit(Patterns.from_table(rfm_patterns(rfm)), penalizer).params
    values = []
    for name in base.params:
        value = plain_params[name]
        if name in base.time_params:
            value *= scale
        elif name in base.rate_params:
            value /= scale
        values.append(np.log(value))
    return np.array(values)
