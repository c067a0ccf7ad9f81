"""One fit of a purchase model, and the answers at the edge of its parameter space: the
no-dropout limit (the NBD) and the homogeneous limits of its mixing distributions, shipped
by name when the likelihood runs to them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from clv.models.base import Fit, PurchaseProcess
from clv.models.fitted import PurchaseModel
from clv.models.optimize import SHAPE_CAP, flat
from clv.models.patterns import Patterns
from clv.models.registry import (
    NO_DROPOUT,
    purchase_process,
)


def log_likelihood(kind: str, params: dict[str, float], data: Patterns) -> float:
    """Total log-likelihood of ``data`` under model ``kind`` at ``params`` (no penalty)."""
    with np.errstate(all="ignore"):
        return purchase_process(kind).log_likelihood(params, data)


#: A fitted parameter below this has run to the boundary of its space (e.g. BG/NBD's a, b → 0 on
#: a log where nobody seems to drop out): the fit is treated as not converged.
MIN_PARAMETER = 1e-8


#: The models whose no-dropout edge is the NBD (MBG/CNBD-k's is an Erlang-k process instead).
HAS_NBD_LIMIT = ("bgnbd", "mbgnbd", "pareto", "ggomnbd")


#: Most log-likelihood a failed fit may have gained over the NBD limit for the limit to be its
#: answer: a likelihood-ratio statistic 2·ΔLL of at most 2 (below χ²'s 95 % point of 3.84 for
#: one parameter): the dropout the fit was chasing is not in the data.
LIMIT_GAIN = 1.0


def fit_once(
    process: PurchaseProcess,
    patterns: Patterns,
    penalizer: float,
    seen: list[Fit] | None = None,
    start: Mapping[str, float] | None = None,
) -> Fit:
    """One fit of ``process``; ``seen`` collects every fit tried (the boundary answers start
    from the first)."""
    fit = process.fit(patterns, penalizer, start)
    if seen is not None:
        seen.append(fit)
    values = np.array(list(fit.params.values()))
    low, high = np.array(list(process.bounds.values())).T
    if not np.all(np.isfinite(values)) or np.any(values <= low) or np.any(values >= high):
        raise ArithmeticError(f"non-finite parameters or parameters out of bounds {fit.params}")
    shapes = [n not in process.limit_params for n in fit.params]
    if np.any((values < MIN_PARAMETER) & shapes):
        raise ArithmeticError(
            f"a shape parameter ran to the edge of its space (below {MIN_PARAMETER:g}: the data "
            f"do not identify the model, and its scores would not be numbers) at {fit.params}"
        )
    if not fit.converged:
        raise ArithmeticError(f"the optimizer did not converge ({fit.message}) at {fit.params}")
    return fit


def fitted_model(
    kind: str, fit: Fit, time_unit: str, penalizer: float, limit_of: str | None = None
) -> PurchaseModel:
    """The :class:`PurchaseModel` of a fit of ``kind``."""
    return PurchaseModel(
        kind=kind,
        params=fit.params,
        time_unit=time_unit,
        log_likelihood=fit.log_likelihood,
        penalizer=penalizer,
        standard_errors=fit.standard_errors,
        covariance=fit.covariance,
        limit_of=limit_of,
    )


def no_dropout_limit(
    kind: str, patterns: Patterns, failed: list[Fit], penalizer: float, time_unit: str
) -> PurchaseModel | None:
    """The NBD limit of ``kind`` when its failed fit ran to the no-dropout edge, else None.

    The failed (unpenalized) fit's log-likelihood is compared with the NBD's: the NBD is the
    model's limit, so the model can only do better; when it gains at most :data:`LIMIT_GAIN`,
    the likelihood's supremum is at the edge and the limit is shipped. A failed fit with a
    non-finite likelihood, a model without that limit, or an NBD that does not converge
    either, give None (the failure stands).
    """
    if kind not in HAS_NBD_LIMIT or not failed or not np.isfinite(failed[0].log_likelihood):
        return None
    try:
        fit = fit_once(purchase_process(NO_DROPOUT), patterns, penalizer)
    except (ArithmeticError, ValueError, np.linalg.LinAlgError):
        return None
    if failed[0].log_likelihood - fit.log_likelihood > LIMIT_GAIN:
        return None
    return fitted_model(NO_DROPOUT, fit, time_unit, penalizer, limit_of=kind)


#: The models whose scores hold at a point-mass mixture. MBG/CNBD-k joined when its series
#: lengths got a geometric bound (:func:`clv.models.mbg_cnbd._enough`): before, at shapes
#: near 1e6 they asked for millions of terms and its tables for 48 GiB.
HAS_HOMOGENEOUS_LIMIT = ("bgnbd", "mbgnbd", "pareto", "mbgcnbd")


#: Models whose no-dropout edge is the model itself with a dropout shape run to 0 (MBG/CNBD-k,
#: whose limit there is an Erlang-k renewal process nobody leaves, not the NBD): that shape.
DROPOUT_SHAPE_EDGE = {"mbgcnbd": "a"}


#: The dropout shape such an edge ships with (at least 100 × :data:`MIN_PARAMETER`, where every
#: score is a number): with ``b`` above 1 the mean dropout probability is below 1e-6, and the
#: likelihood there is checked to be within :func:`~clv.models.optimize.flat` of the fit's.
EDGE_SHAPE = 1e-6


#: The two shapes of each mixing distribution: when both run to infinity with their ratio fixed,
#: the mixture becomes a point mass (every customer the same rate, or the same dropout).
MIXING_PAIRS = (("rate", "r", "alpha"), ("dropout", "a", "b"), ("dropout", "s", "beta"))


#: A pair counts as running away when scaling both shapes by :data:`FARTHER` changes the
#: log-likelihood by less than :func:`~clv.models.optimize.flat` (or raises it): the supremum
#: lies that way.
FARTHER = 10.0


def homogeneous_limit(
    kind: str, patterns: Patterns, failed: list[Fit], penalizer: float, time_unit: str
) -> PurchaseModel | None:
    """The failed fit of ``kind`` as the model at its no-heterogeneity edge, else None.

    A fit that stops (scipy's "precision loss") while a mixing distribution's two shapes run up
    together (BG/NBD's a, b → ∞ with a/(a + b) fixed: every customer drops out with the same
    probability; r, α → ∞: the Poisson limit) has found the likelihood's supremum at infinity.
    So has one whose dropout shape runs to 0 (:data:`DROPOUT_SHAPE_EDGE`: MBG/CNBD-k's
    ``a`` → 0, nobody leaves). The point where it stopped is within :func:`flat` of that
    supremum along the ray, so its parameters are shipped (each running pair scaled back to
    :data:`~clv.models.optimize.SHAPE_CAP` and the dropout shape set to :data:`EDGE_SHAPE`,
    each step kept when the likelihood stays within :func:`flat` of the fit's), named as the limit
    (:attr:`PurchaseModel.homogeneous`), when every score is a number there.
    Anything else — a non-finite likelihood, a pair that does not run away, a non-finite
    score — leaves the failure standing.
    """
    if kind not in HAS_HOMOGENEOUS_LIMIT or not failed:
        return None
    fit = failed[0]
    if not np.isfinite(fit.log_likelihood):
        return None
    params = fit.params
    if not all(np.isfinite(v) and v > 0 for v in params.values()):
        return None
    running, moves = [], []
    edge = DROPOUT_SHAPE_EDGE.get(kind)
    if edge is not None and params[edge] <= EDGE_SHAPE:  # a fit started there stays there
        running.append("no_dropout")
        moves.append({edge: EDGE_SHAPE})
    for name, p, q in MIXING_PAIRS:
        if p not in params or q not in params:
            continue
        farther = params | {p: params[p] * FARTHER, q: params[q] * FARTHER}
        gained = log_likelihood(kind, farther, patterns) - fit.log_likelihood
        if (
            params[p] > 1.0
            and params[q] > 1.0
            and np.isfinite(gained)
            and gained > -flat(fit.log_likelihood)
        ):
            running.append(name)
            scale = min(1.0, SHAPE_CAP / min(params[p], params[q]))
            moves.append({p: params[p] * scale, q: params[q] * scale})
    if not running:
        return None
    shipped, at_cap = dict(params), fit.log_likelihood
    for move in moves:  # each kept when the likelihood stays within flat of the fit's
        trial = shipped | move
        value = log_likelihood(kind, trial, patterns)
        if value >= fit.log_likelihood - flat(fit.log_likelihood):
            shipped, at_cap = trial, value
    model = replace(
        fitted_model(kind, fit, time_unit, penalizer),
        params=shipped,
        log_likelihood=at_cap,
        homogeneous=tuple(running),
    )
    x, t_x, T = patterns.x, patterns.t_x, patterns.T
    with np.errstate(all="ignore"):
        scores = [
            model.expected_purchases(1.0, x, t_x, T),
            model.p_alive(x, t_x, T),
            model.p_no_purchase(1.0, x, t_x, T),
        ]
    if not all(np.all(np.isfinite(v)) for v in scores):
        return None
    if np.any(scores[1] < 0) or np.any(scores[1] > 1) or np.any(scores[0] < 0):
        return None
    return model
