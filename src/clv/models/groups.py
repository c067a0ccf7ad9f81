"""Customers by the plain models that score them.

A model with static covariates (:mod:`clv.models.covariates`,
:mod:`clv.models.spend_covariates`) is, for the customers of one covariate vector, a plain
model at that group's parameters. Scoring code splits its customers here and runs the plain
models' code on each group, so no score, interval or range is computed twice in two ways.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from clv.data.compact import CUSTOMER
from clv.models.covariate_model import CovariateModel
from clv.models.spend_covariates import CovariateSpendModel


def plain_models(
    purchase: Any, spend: Any, frame: pd.DataFrame
) -> list[tuple[np.ndarray, Any, Any]]:
    """The rows of ``frame`` by the plain purchase and spend models that score them.

    Models with covariates read their attribute columns from ``frame`` and split its customers
    by their covariate vectors (the purchase and the spend model's together); other models
    score every row. Returns ``(rows, purchase, spend)`` per group (``spend`` may be None); at
    least one group, an empty one for an empty frame.

    Raises
    ------
    DataValidationError
        When ``frame`` lacks an attribute or a value (:meth:`CovariateDesign.encode`).
    """
    ids = frame.get(CUSTOMER, None)
    blocks = []
    if isinstance(purchase, CovariateModel):
        blocks.append(purchase.design.encode(frame, ids))
    if isinstance(spend, CovariateSpendModel):
        blocks.append(spend.design.encode(frame, ids))
    if not blocks:
        return [(np.arange(len(frame)), purchase, spend)]
    z = np.hstack(blocks)
    keys, which = np.unique(z, axis=0, return_inverse=True)
    which = np.ravel(which)
    if not len(keys):  # no customers: one empty group, of the reference models (z = 0)
        keys = np.zeros((1, z.shape[1]))
    split = blocks[0].shape[1] if isinstance(purchase, CovariateModel) else 0
    out = []
    for g, key in enumerate(keys):
        p = purchase.for_group(key[:split]) if isinstance(purchase, CovariateModel) else purchase
        s = spend.for_group(key[split:]) if isinstance(spend, CovariateSpendModel) else spend
        out.append((np.flatnonzero(which == g), p, s))
    return out


def has_covariates(bundle: Any) -> bool:
    """Whether the bundle's purchase or spend model reads customer attributes."""
    return isinstance(bundle.purchase, CovariateModel) or isinstance(
        bundle.spend, CovariateSpendModel
    )


def bundle_groups(bundle: Any, frame: pd.DataFrame) -> list[tuple[np.ndarray, Any]]:
    """:func:`plain_models` of a bundle: each group's rows and the bundle with its plain
    models."""
    return [
        (rows, replace(bundle, purchase=p, spend=s))
        for rows, p, s in plain_models(bundle.purchase, bundle.spend, frame)
    ]


#: Customers a per-customer score handles at a time: the temporary arrays of a model's scores
#: (its distinct patterns and pairs, its log-likelihood terms) are a block's, not every
#: customer's (at 5.5M customers one Pareto/NBD score rose 2.4 GB above what the run held).
SCORE_ROWS = 1_000_000


def blocks(rows: np.ndarray, size: int = SCORE_ROWS) -> Iterator[np.ndarray]:
    """Consecutive pieces of at most ``size`` of ``rows`` (one, possibly empty, when it is
    short)."""
    if len(rows) <= size:
        yield rows
        return
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def per_customer(
    model: Any,
    frame: pd.DataFrame,
    score: Callable[[Any, np.ndarray], np.ndarray],
    size: int = SCORE_ROWS,
) -> np.ndarray:
    """``score(plain_purchase_model, rows)`` of each group of ``frame``'s customers, put
    together in ``frame``'s row order (one value per row).

    ``score`` is called on blocks of at most ``size`` rows: it must score each row on its own
    (the models' scores do, to the bit, whatever else is in the block)."""
    parts = plain_models(model, None, frame)
    if len(parts) == 1 and len(frame) <= size:
        return np.asarray(score(parts[0][1], parts[0][0]), dtype=float)
    out = np.empty(len(frame))
    for rows, plain, _ in parts:
        for block in blocks(rows, size):
            out[block] = score(plain, block)
    return out


def attribute_names(bundle: Any) -> list[str]:
    """The customer attributes the bundle's models read (none without covariates)."""
    designs = [getattr(m, "design", None) for m in (bundle.purchase, bundle.spend)]
    return list(dict.fromkeys(c.name for d in designs if d is not None for c in d.covariates))


def spend_per_transaction(spend: Any, frame: pd.DataFrame) -> np.ndarray:
    """Each customer's expected spend per transaction (a spend model with covariates reads
    their attributes from ``frame``)."""
    out = np.empty(len(frame))
    x, m = (frame[c].to_numpy(dtype=float) for c in ("frequency", "monetary_value"))
    for rows, _, plain in plain_models(None, spend, frame):
        out[rows] = plain.expected_average_value(x[rows], m[rows])
    return out
