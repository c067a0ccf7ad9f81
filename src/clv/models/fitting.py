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
from clv.models.base import Fit
from clv.models.ensemble import EnsembleModel
from clv.models.fitted import PurchaseModel
from clv.models.limits import (
    MIN_PARAMETER,
    fit_once,
    fitted_model,
    homogeneous_limit,
    no_dropout_limit,
)
from clv.models.patterns import Patterns, describe_pattern, rfm_patterns
from clv.models.registry import (
    CHURN_FEATURE_MODELS,
    ENSEMBLE,
    ENSEMBLE_MEMBERS,
    MIXTURES,
    NESTED_IN,
    STACKED,
    WITH_COVARIATES,
    base_kind,
    display_name,
    purchase_process,
)


def purchase_model_from_dict(data: dict[str, Any]) -> Any:
    """Rebuild a purchase model (a single model, one with covariates, or the ensemble) from its
    ``to_dict`` output."""
    if str(data.get("kind", "")).endswith(WITH_COVARIATES):
        from clv.models.covariate_model import CovariateModel

        return CovariateModel.from_dict(data)
    if data.get("kind") in MIXTURES:
        return EnsembleModel.from_dict(data)
    return PurchaseModel.from_dict(data)


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
    _check_fittable(kind, process, rfm)
    table = rfm_patterns(rfm)
    patterns = Patterns.from_table(table)
    if "log_gap_sum" in rfm:  # what a model of purchase regularity needs beyond the patterns
        patterns = replace(patterns, log_gap_sum=float(rfm["log_gap_sum"].sum()))
    seen: list[Fit] = []
    try:
        fit, coef = fit_with_retry(
            lambda coef: fit_once(process, patterns, coef, seen, start),
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


def _check_fittable(kind: str, process: Any, rfm: pd.DataFrame) -> None:
    """Refuse, with the reason and what to do, a table no fit of ``kind`` can use."""
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
        # GG/NBD and MBG/CNBD-k start from their fit on the holdout split: the Pareto/NBD limit
        # and MBG/NBD fits they go through are then a step away (the others start afresh)
        start = member.params if member.kind in NESTED_IN.values() else None
        try:
            members.append(
                fit_purchase_model(
                    member.kind, rfm, time_unit, penalizer, retry_penalizer, start=start
                )
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
