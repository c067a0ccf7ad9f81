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
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from clv.errors import DataValidationError

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
