"""Fitting purchase models by name, with one retry, and rebuilding them from JSON.

A fit that does not converge, or ends with parameters outside their bounds, is retried once with
a small L2 penalizer. When both fail because the likelihood runs to the no-dropout edge of the
parameter space (a log where nobody seems to leave), the model's limit there — the NBD without
dropout (:mod:`clv.models.nbd`) — is the answer and is returned, saying so (``limit_of``).
Anything else (an optimizer that wanders, a NaN likelihood, dropout the data do show) fails with
a :class:`~clv.errors.ModelFitError` that describes the data. The ensemble is fitted as its
members.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from clv._lifetimes import fit_with_retry
from clv.errors import ModelFitError
from clv.models.base import Fit, PurchaseProcess
from clv.models.ensemble import EnsembleModel
from clv.models.fitted import PurchaseModel
from clv.models.patterns import Patterns, describe_pattern, rfm_patterns
from clv.models.registry import (
    CHURN_FEATURE_MODELS,
    ENSEMBLE,
    ENSEMBLE_MEMBERS,
    MIXTURES,
    NO_DROPOUT,
    STACKED,
    WITH_COVARIATES,
    base_kind,
    display_name,
    purchase_process,
)


def log_likelihood(kind: str, params: dict[str, float], data: Patterns) -> float:
    """Total log-likelihood of ``data`` under model ``kind`` at ``params`` (no penalty)."""
    with np.errstate(all="ignore"):
        return purchase_process(kind).log_likelihood(params, data)


def purchase_model_from_dict(data: dict[str, Any]) -> Any:
    """Rebuild a purchase model (a single model, one with covariates, or the ensemble) from its
    ``to_dict`` output."""
    if str(data.get("kind", "")).endswith(WITH_COVARIATES):
        from clv.models.covariate_model import CovariateModel

        return CovariateModel.from_dict(data)
    if data.get("kind") in MIXTURES:
        return EnsembleModel.from_dict(data)
    return PurchaseModel.from_dict(data)


#: A fitted parameter below this has run to the boundary of its space (e.g. BG/NBD's a, b → 0 on
#: a log where nobody seems to drop out): the fit is treated as not converged.
MIN_PARAMETER = 1e-8
#: The models whose no-dropout edge is the NBD (MBG/CNBD-k's is an Erlang-k process instead).
HAS_NBD_LIMIT = ("bgnbd", "mbgnbd", "pareto", "ggomnbd")
#: Most log-likelihood a failed fit may have gained over the NBD limit for the limit to be its
#: answer: a likelihood-ratio statistic 2·ΔLL of at most 2 (below χ²'s 95 % point of 3.84 for
#: one parameter): the dropout the fit was chasing is not in the data.
LIMIT_GAIN = 1.0


def _fit_once(
    process: PurchaseProcess,
    patterns: Patterns,
    penalizer: float,
    seen: list[Fit] | None = None,
    start: Mapping[str, float] | None = None,
) -> Fit:
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


def fit_purchase_model(
    kind: str,
    rfm: pd.DataFrame,
    time_unit: str,
    penalizer: float = 0.0,
    retry_penalizer: float = 0.001,
    covariates: Mapping[str, Any] | None = None,
    plain_params: Mapping[str, float] | None = None,
    start: Mapping[str, float] | None = None,
) -> Any:
    """Fit a BTYD purchase model on RFM data.

    Parameters
    ----------
    kind : str
        A name in :data:`~clv.models.registry.CANDIDATES`; ``ensemble`` fits each of
        ``ENSEMBLE_MEMBERS`` and returns their mixture; ``<model>_covariates`` fits the model
        with ``covariates`` (:class:`~clv.models.covariate_model.CovariateModel`).
    rfm : pandas.DataFrame
        Columns ``frequency``, ``recency``, ``T`` (see :mod:`clv.features`); with covariates,
        ``customer_id`` and the attribute columns too.
    time_unit : str
        The unit of ``recency`` and ``T``, stored with the model.
    penalizer : float
        L2 penalizer of the first attempt.
    retry_penalizer : float
        Penalizer of the single retry after a failed first attempt (at least ``penalizer``).
    covariates : mapping, optional
        The config's ``covariates`` section (attributes per process, categorical ones, their
        reference levels, the L2 penalties), for a ``_covariates`` kind.
    plain_params : mapping, optional
        For a ``_covariates`` kind: the model's fit without covariates on the same data, the
        start of the fit (else fitted first).
    start : mapping, optional
        For a plain model: the parameters its first attempt starts from (a warm start, e.g.
        its fit on the neighbouring holdout window); ignored unless they are this model's.

    Returns
    -------
    PurchaseModel, CovariateModel or EnsembleModel

    Raises
    ------
    ModelFitError
        If neither attempt converges to finite, positive parameters.
    """
    if kind.endswith(WITH_COVARIATES):
        return _fit_with_covariates(
            kind, rfm, time_unit, penalizer, retry_penalizer, covariates, plain_params
        )
    if kind == ENSEMBLE:
        return EnsembleModel(
            tuple(
                fit_purchase_model(k, rfm, time_unit, penalizer, retry_penalizer)
                for k in ENSEMBLE_MEMBERS
            )
        )
    if kind == STACKED:
        raise ModelFitError(
            "The stacked mixture is weighted on a holdout: form it with clv.evaluation (its "
            "weights) and refit it on new data with refit_mixture."
        )
    process = purchase_process(kind)
    if len(rfm) == 0:
        raise ModelFitError(f"Cannot fit {display_name(kind)}: there are no customers.")
    if not (rfm["frequency"] > 0).any():
        raise ModelFitError(
            f"Cannot fit {display_name(kind)} on {describe_pattern(rfm)}: with no repeat "
            "purchase at all, the purchase rate cannot be estimated (the fit degenerates to "
            "r → 0). Use a longer calibration period or check that customer ids are consistent."
        )
    if process.needs_log_gaps and "log_gap_sum" not in rfm:
        raise ModelFitError(
            f"Cannot fit {display_name(kind)}: it chooses its regularity k by likelihood, which "
            "needs the times between purchases. Add them with clv.features.add_log_gaps (the "
            "CLI does when the model is a candidate)."
        )
    table = rfm_patterns(rfm)
    patterns = Patterns.from_table(table)
    if "log_gap_sum" in rfm:  # what a model of purchase regularity needs beyond the patterns
        patterns = replace(patterns, log_gap_sum=float(rfm["log_gap_sum"].sum()))
    seen: list[Fit] = []
    try:
        fit, coef = fit_with_retry(
            lambda coef: _fit_once(process, patterns, coef, seen, start),
            [penalizer, max(retry_penalizer, penalizer * 10)],
            what=display_name(kind),
            data=f"{describe_pattern(rfm)} ({len(table):,} unique patterns)",
            advice="Try a larger train.penalizer, a longer calibration period, or another model.",
        )
    except ModelFitError:
        limit = no_dropout_limit(kind, patterns, seen[:1], penalizer, time_unit)
        if limit is None:
            limit = homogeneous_limit(kind, patterns, seen[:1], penalizer, time_unit)
        if limit is None:
            raise
        return limit
    if coef != penalizer:  # the unpenalized fit failed: its edge, when better, is the answer
        limit = homogeneous_limit(kind, patterns, seen[:1], penalizer, time_unit)
        if limit is not None and limit.log_likelihood > fit.log_likelihood:
            return limit
    return fitted_model(kind, fit, time_unit, coef)


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
        fit = _fit_once(purchase_process(NO_DROPOUT), patterns, penalizer)
    except (ArithmeticError, ValueError, np.linalg.LinAlgError):
        return None
    if failed[0].log_likelihood - fit.log_likelihood > LIMIT_GAIN:
        return None
    return fitted_model(NO_DROPOUT, fit, time_unit, penalizer, limit_of=kind)


#: The models whose closed forms hold at a point-mass mixture (MBG/CNBD-k's purchase tables
#: grow with its shapes: at its edge they asked for 48 GiB on a 5,000-customer zoo log).
HAS_HOMOGENEOUS_LIMIT = ("bgnbd", "mbgnbd", "pareto")
#: The two shapes of each mixing distribution: when both run to infinity with their ratio fixed,
#: the mixture becomes a point mass (every customer the same rate, or the same dropout).
MIXING_PAIRS = (("rate", "r", "alpha"), ("dropout", "a", "b"), ("dropout", "s", "beta"))
#: A pair counts as running away when scaling both shapes by :data:`FARTHER` changes the
#: log-likelihood by less than ``FLAT`` (or raises it): the supremum lies that way. ``FLAT`` is
#: :data:`FLAT` or, on a large log, :data:`FLAT_SHARE` of the log-likelihood (a gamma function of
#: shapes near 1e8 is computed to about 0.02 units on 5,000 customers).
FARTHER, FLAT, FLAT_SHARE = 10.0, 0.01, 1e-6
#: A pair that ran past this is shipped scaled back to it (the same ratio): the scores are the
#: limit's to well within :data:`FLAT`, and numbers of a size the closed forms handle exactly.
SHAPE_CAP = 1e4


def flat(log_likelihood: float) -> float:
    """How little a log-likelihood change is along a ray to the edge (:data:`FLAT`)."""
    return max(FLAT, FLAT_SHARE * abs(log_likelihood))


def homogeneous_limit(
    kind: str, patterns: Patterns, failed: list[Fit], penalizer: float, time_unit: str
) -> PurchaseModel | None:
    """The failed fit of ``kind`` as the model at its no-heterogeneity edge, else None.

    A fit that stops (scipy's "precision loss") while a mixing distribution's two shapes run up
    together (BG/NBD's a, b → ∞ with a/(a + b) fixed: every customer drops out with the same
    probability; r, α → ∞: the Poisson limit) has found the likelihood's supremum at infinity.
    The point where it stopped is within :func:`flat` of that supremum along the ray, so its
    parameters are shipped (the pair scaled back to :data:`SHAPE_CAP` when that costs no more),
    named as the limit (:attr:`PurchaseModel.homogeneous`), when every score is a number there.
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
    running, shipped = [], dict(params)
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
            shipped[p], shipped[q] = params[p] * scale, params[q] * scale
    if not running:
        return None
    at_cap = log_likelihood(kind, shipped, patterns)
    if not at_cap >= fit.log_likelihood - flat(fit.log_likelihood):
        shipped, at_cap = dict(params), fit.log_likelihood
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


def _fit_with_covariates(
    kind: str,
    rfm: pd.DataFrame,
    time_unit: str,
    penalizer: float,
    retry_penalizer: float,
    settings: Mapping[str, Any] | None,
    plain_params: Mapping[str, float] | None = None,
) -> Any:
    """:func:`~clv.models.covariate_model.fit_covariate_model` with the design learned from ``rfm``
    and the same retry as the plain models."""
    from clv.models.covariate_model import fit_covariate_model
    from clv.models.covariates import CovariateDesign

    if not settings or not (settings.get("purchase") or settings.get("dropout")):
        raise ModelFitError(f"Cannot fit {display_name(kind)}: no covariates are configured.")
    design = CovariateDesign.learn(
        rfm,
        settings.get("purchase", ()),
        settings.get("dropout", ()),
        settings.get("categorical", ()),
        settings.get("reference"),
    )
    z = design.encode(rfm, rfm.get("customer_id", None))
    l2 = {"purchase": settings.get("l2_purchase", 0.0), "dropout": settings.get("l2_dropout", 0.0)}
    base = purchase_process(base_kind(kind))

    def attempt(coef: float) -> Any:
        start = plain_params if coef == penalizer else None  # a retry starts afresh
        model, converged = fit_covariate_model(
            base.kind, rfm, z, design, time_unit, coef, l2, start
        )
        values = np.array(list(model.params.values()))
        shapes = np.array([n not in base.limit_params for n in model.params])
        if (
            not converged
            or not np.all(np.isfinite(values))
            or np.any((values < MIN_PARAMETER) & shapes)
        ):
            raise ArithmeticError(
                f"the fit with covariates did not converge to finite, positive parameters "
                f"({model.params}, coefficients {model.coefficients})"
            )
        return model

    model, _ = fit_with_retry(
        attempt,
        [penalizer, max(retry_penalizer, penalizer * 10)],
        what=display_name(kind),
        data=f"{describe_pattern(rfm)}, {len(design.coefficients)} covariate coefficients",
        advice="Try L2 penalties (covariates.l2_purchase/l2_dropout), fewer covariates, or "
        "another model.",
    )
    return model


def fit_first(
    kinds: tuple[str, ...],
    rfm: pd.DataFrame,
    time_unit: str,
    penalizer: float = 0.0,
    retry_penalizer: float = 0.001,
    covariates: Mapping[str, Any] | None = None,
) -> tuple[Any, dict[str, str]]:
    """Fit the first of ``kinds`` that converges (:func:`fit_purchase_model`).

    Returns
    -------
    tuple
        The model, and the failures before it (kind → message).

    Raises
    ------
    ModelFitError
        If none converges, with every failure.
    """
    failures: dict[str, str] = {}
    for kind in kinds:
        try:
            model = fit_purchase_model(kind, rfm, time_unit, penalizer, retry_penalizer, covariates)
            return model, failures
        except ModelFitError as exc:
            failures[kind] = str(exc)
    raise ModelFitError(" ".join(failures.values()))


def refit_mixture(
    mixture: EnsembleModel,
    rfm: pd.DataFrame,
    time_unit: str,
    penalizer: float = 0.0,
    retry_penalizer: float = 0.001,
) -> tuple[EnsembleModel, dict[str, str]]:
    """A mixture's members refitted on ``rfm``, with the mixture's weights.

    A member that does not converge there leaves the mixture and the others' weights are
    renormalised (its failure is returned, for a notice); the weights are those the holdout
    chose, not refitted: the whole log has no holdout to weigh on.

    Raises
    ------
    ModelFitError
        If no member converges, with every failure.
    """
    members, weights, failures = [], [], {}
    for member, weight in zip(mixture.members, mixture.weights, strict=True):
        try:
            members.append(
                fit_purchase_model(member.kind, rfm, time_unit, penalizer, retry_penalizer)
            )
            weights.append(weight)
        except ModelFitError as exc:
            failures[member.kind] = str(exc)
    if not members:
        raise ModelFitError(" ".join(failures.values()))
    total = sum(weights)
    refitted = EnsembleModel(
        tuple(members), kind=mixture.kind, weights=tuple(w / total for w in weights)
    )
    return refitted, failures


def churn_feature_model(
    rfm: pd.DataFrame, time_unit: str
) -> tuple[PurchaseModel | EnsembleModel, dict[str, str]]:
    """The BTYD model whose P(alive), expected purchases and P(no purchase) feed the churn
    classifier: BG/NBD, or the first of :data:`CHURN_FEATURE_MODELS` that converges."""
    return fit_first(CHURN_FEATURE_MODELS, rfm, time_unit)
