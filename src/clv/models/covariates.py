"""Static customer covariates in the purchase models: rates shifted by ``exp(γᵀz)``.

CLVTools' form (Bachmann, Meierer & Näf; the static-covariate Pareto/NBD of Fader & Hardie's
2007 note): a customer with attributes ``z`` has the scale parameters of her purchase and
dropout rates moved by ``exp(−γᵀz)``, so each rate's mean is multiplied by ``exp(γᵀz)``
(BG/NBD moves ``a`` and ``b`` instead; each model says which parameters in its
``covariate_links``). The likelihood is the model's own at each customer's parameters, so a fit
sums the model's likelihood over distinct (pattern, covariate vector) groups, and a customer is
scored by the plain model at her group's parameters (:meth:`CovariateModel.for_group`).

Attributes become model columns by :class:`CovariateDesign`: numbers as they are, categories
one-hot against a reference level (the first in sort order unless the config names one).
An L2 penalty per process, ``l2 · Σγ²`` on the mean negative log-likelihood per customer, is
CLVTools' regularization.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from clv.data.compact import CUSTOMER
from clv.errors import DataValidationError
from clv.models.base import PurchaseProcess, fit_patterns, saved_covariance
from clv.models.fitted import PurchaseModel
from clv.models.patterns import Patterns, rfm_patterns
from clv.models.registry import WITH_COVARIATES, base_kind, display_name, purchase_process

#: The processes a covariate may act on, in coefficient order (``spend``: the Gamma-Gamma
#: scale, :mod:`clv.models.spend_covariates`).
PROCESSES = ("purchase", "dropout", "spend")
#: Beyond this many distinct covariate vectors a fit would evaluate the model once per customer
#: group; bin a continuous attribute instead.
MAX_GROUPS = 5000


@dataclass(frozen=True)
class Covariate:
    """One customer attribute as model columns.

    Parameters
    ----------
    name : str
        Column of the customer list.
    levels : tuple of str
        Empty for a numeric attribute (used as it is); else the categories, the reference level
        first (it gets no column).
    """

    name: str
    levels: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """Names of the model columns: the attribute's own, or ``name_level`` per non-reference
        level (pandas' ``get_dummies`` names)."""
        if not self.levels:
            return (self.name,)
        return tuple(f"{self.name}_{level}" for level in self.levels[1:])


@dataclass(frozen=True)
class CovariateDesign:
    """Which customer attributes act on which process, and how they become numbers.

    Parameters
    ----------
    covariates : tuple of Covariate
        Every attribute used, in column order.
    purchase, dropout, spend : tuple of str
        Attribute names acting on the purchase rate, the dropout process, and spend per
        transaction (a spend model's design has only ``spend``; a purchase model's not).
    """

    covariates: tuple[Covariate, ...]
    purchase: tuple[str, ...]
    dropout: tuple[str, ...]
    spend: tuple[str, ...] = ()

    @classmethod
    def learn(
        cls,
        customers: pd.DataFrame,
        purchase: Sequence[str],
        dropout: Sequence[str],
        categorical: Sequence[str] = (),
        reference: Mapping[str, Any] | None = None,
        spend: Sequence[str] = (),
    ) -> CovariateDesign:
        """The design of the training customers' attributes.

        Parameters
        ----------
        customers : pandas.DataFrame
            One row per customer with the attribute columns.
        purchase, dropout : sequence of str
            Attributes acting on each process of a purchase model.
        categorical : sequence of str
            Attributes to one-hot encode (others must be numbers).
        reference : mapping, optional
            Reference level of a categorical attribute (default: the first in sort order).
        spend : sequence of str
            Attributes acting on spend per transaction (a spend model's design).

        Raises
        ------
        DataValidationError
            For a missing column, a non-numeric numeric attribute, a reference level that does
            not occur, or an attribute with a single value (nothing to estimate).
        """
        reference = dict(reference or {})
        names = list(dict.fromkeys([*purchase, *dropout, *spend]))
        if not names:
            raise DataValidationError(
                "No covariates named: list them in the config's covariates section."
            )
        missing = [n for n in names if n not in customers]
        if missing:
            raise DataValidationError(
                f"Covariate columns {missing} are not in the customer list (it has "
                f"{[c for c in customers.columns]}). Name columns of --customers in "
                "the config's covariates section."
            )
        covariates = []
        for name in names:
            values = customers[name].dropna()
            if name in categorical:
                levels = sorted(set(level_text(values)))
                ref = str(reference.get(name, levels[0] if levels else ""))
                if ref not in levels:
                    raise DataValidationError(
                        f"Reference level {ref!r} of covariate {name!r} does not occur; its "
                        f"levels are {levels}."
                    )
                covariate = Covariate(name, (ref, *(v for v in levels if v != ref)))
                distinct = len(levels)
            else:
                numbers = pd.to_numeric(values, errors="coerce")
                bad = values[numbers.isna()]
                if len(bad):
                    raise DataValidationError(
                        f"Covariate {name!r} has {len(bad):,} values that are not numbers "
                        f"(e.g. {bad.iloc[0]!r}); list it under covariates.categorical "
                        "to one-hot encode it."
                    )
                covariate = Covariate(name)
                distinct = numbers.nunique()
            if distinct < 2:
                raise DataValidationError(
                    f"Covariate {name!r} takes a single value in the training customers: its "
                    "effect cannot be estimated. Leave it out of the config's covariates."
                )
            covariates.append(covariate)
        return cls(tuple(covariates), tuple(purchase), tuple(dropout), tuple(spend))

    @property
    def columns(self) -> tuple[str, ...]:
        """Every model column, in order."""
        return tuple(c for cov in self.covariates for c in cov.columns)

    def process_columns(self, process: str) -> tuple[str, ...]:
        """The model columns acting on ``process`` (one of :data:`PROCESSES`)."""
        names = getattr(self, process)
        return tuple(c for cov in self.covariates if cov.name in names for c in cov.columns)

    @property
    def coefficients(self) -> tuple[str, ...]:
        """Coefficient names: ``purchase.<column>``, ``dropout.<column>``, ``spend.<column>``."""
        return tuple(f"{p}.{c}" for p in PROCESSES for c in self.process_columns(p))

    def encode(self, customers: pd.DataFrame, ids: pd.Series | None = None) -> np.ndarray:
        """The model columns of each customer, shape ``(len(customers), len(columns))``.

        Parameters
        ----------
        customers : pandas.DataFrame
            With the attribute columns.
        ids : pandas.Series, optional
            Customer ids, for the examples in error messages.

        Raises
        ------
        DataValidationError
            For a missing column or value, a non-number, or a level not seen in training —
            naming the column, how many customers, and one of them.
        """
        ids = ids if ids is not None else pd.Series(range(len(customers)))
        blocks = []
        for cov in self.covariates:
            if cov.name not in customers:
                raise DataValidationError(
                    f"The model takes covariate {cov.name!r}, which the customers lack: give "
                    "the customer list (--customers) with that column."
                )
            column = customers[cov.name]
            _require(column.notna().to_numpy(), cov.name, ids, "have no value for", "Fill them in")
            if cov.levels:
                text = level_text(column)
                _require(
                    np.isin(text, cov.levels),
                    cov.name,
                    ids,
                    f"have a level not seen in training (levels {list(cov.levels)}):",
                    "Map them to a known level or retrain with them",
                )
                blocks.append(text[:, None] == np.array(cov.levels[1:])[None, :])
            else:
                numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
                _require(np.isfinite(numbers), cov.name, ids, "have a non-number in", "Fix them")
                blocks.append(numbers[:, None])
        return np.hstack(blocks).astype(float) if blocks else np.empty((len(customers), 0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible values."""
        return {
            "covariates": [{"name": c.name, "levels": list(c.levels)} for c in self.covariates],
            "purchase": list(self.purchase),
            "dropout": list(self.dropout),
            "spend": list(self.spend),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CovariateDesign:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            tuple(Covariate(c["name"], tuple(c["levels"])) for c in data["covariates"]),
            tuple(data["purchase"]),
            tuple(data["dropout"]),
            tuple(data.get("spend", ())),
        )


def saved_coefficients(
    data: dict[str, Any], model: str
) -> tuple[CovariateDesign, dict[str, float]]:
    """The design and the coefficients of a saved model with covariates (``to_dict`` output of
    :class:`CovariateModel` or the spend model's); ``ValueError`` naming ``model`` unless every
    coefficient is finite."""
    design = CovariateDesign.from_dict(data["covariates"])
    coefficients = {c: float(data["coefficients"][c]) for c in design.coefficients}
    if not all(np.isfinite(v) for v in coefficients.values()):
        raise ValueError(f"{model} coefficients must be finite: {coefficients}")
    return design, coefficients


def level_text(column: pd.Series) -> np.ndarray:
    """A categorical attribute's values as level names: whole numbers without a decimal part
    (``1`` and ``1.0`` are the same level, whether the column was read as integers or made
    doubles by a model signature or Spark), anything else as its text."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        numbers = column.to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            whole = np.isfinite(numbers) & (numbers == np.round(numbers))
        text = column.astype(str).to_numpy(dtype=object)
        text[whole] = [str(int(v)) for v in numbers[whole]]
        return text
    return column.astype(str).to_numpy(dtype=object)


def _require(ok: np.ndarray, name: str, ids: pd.Series, problem: str, advice: str) -> None:
    if ok.all():
        return
    bad = np.flatnonzero(~ok)
    raise DataValidationError(
        f"Covariate {name!r}: {bad.size:,} of {ok.size:,} customers {problem} it (e.g. customer "
        f"{ids.iloc[bad[0]]}). {advice}, or leave {name!r} out of the config's covariates; no "
        "customer is dropped."
    )


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
    """A purchase model with covariates, as :func:`~clv.models.base.fit_patterns` fits it.

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
