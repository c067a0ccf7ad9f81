"""The refit on the whole log: the chosen purchase model (the next best when it does not
converge there; a stacked mixture's members at the weights the holdouts chose) and
Gamma-Gamma."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from clv.config import Config
from clv.data.log import TransactionLog
from clv.errors import ModelFitError
from clv.evaluation import Evaluation, needs_log_gaps, observation_end, with_covariates
from clv.features import add_log_gaps, build_rfm
from clv.models.ensemble import EnsembleModel
from clv.models.fitted import PurchaseModel
from clv.models.fitting import fit_first, refit_mixture
from clv.models.gamma_gamma import SpendModel, fit_spend_model
from clv.models.registry import STACKED, display_name
from clv.models.spend_covariates import CovariateSpendModel, fit_configured
from clv.stages import StageLog


def refit_chosen(
    evaluation: Evaluation, full: pd.DataFrame, config: Config, notices: list[str]
) -> PurchaseModel | EnsembleModel:
    """The chosen model refitted on the whole log; when it does not converge there, the next
    best candidate by the holdout criterion (a notice says so)."""
    ranked = evaluation.ranked_purchase_models
    settings = config.train
    model = None
    if ranked[0] == STACKED:
        try:
            model = _refit_stacked(evaluation, full, config, notices)
        except ModelFitError as exc:
            notices.append(
                f"No member of the stacked mixture converged on the whole log; shipped the "
                f"next best candidate instead. ({exc})"
            )
    if model is None:
        model, failures = fit_first(
            tuple(k for k in ranked if k != STACKED),
            full,
            config.features.time_unit,
            settings.penalizer,
            settings.retry_penalizer,
            config.covariates.model_dump(),
        )
        for kind, message in failures.items():
            notices.append(
                f"{display_name(kind)} was best on the holdout but did not converge on the "
                f"whole log; shipped {model.name}, the next best, instead. ({message})"
            )
    members = getattr(model, "members", (model,))
    notices += [n for m in members if (n := getattr(m, "limit_note", None))][:1]
    return model


def _refit_stacked(
    evaluation: Evaluation, full: pd.DataFrame, config: Config, notices: list[str]
) -> EnsembleModel:
    """The stacked mixture's members refitted on the whole log at the weights the holdouts
    chose (:mod:`clv.stacking`); a member that does not converge there leaves it."""
    settings = config.train
    model, failures = refit_mixture(
        evaluation.purchase_models[STACKED],
        full,
        config.features.time_unit,
        settings.penalizer,
        settings.retry_penalizer,
    )
    for kind, message in failures.items():
        notices.append(
            f"{display_name(kind)} did not converge on the whole log and left the stacked "
            f"mixture; the others' weights were renormalised. ({message})"
        )
    return model


def refit_spend(
    evaluation: Evaluation, full: pd.DataFrame, config: Config, notices: list[str]
) -> SpendModel | CovariateSpendModel | None:
    """Gamma-Gamma on the whole log (with the covariates the evaluation chose); the caller runs
    it as the optional stage ``spend_refit`` (no value scores when it fails)."""
    plain = fit_spend_model(full, config.train.penalizer, config.train.retry_penalizer)
    if not isinstance(evaluation.spend_model, CovariateSpendModel):
        return plain
    try:
        return fit_configured(
            full,
            plain,
            config.covariates.model_dump(),
            config.train.penalizer,
            config.train.retry_penalizer,
        )
    except ModelFitError as exc:
        notices.append(
            f"Gamma-Gamma with covariates did not converge on the whole log; shipped the "
            f"plain Gamma-Gamma instead: {exc}"
        )
        return plain


@dataclass
class Refit:
    """The models refitted on the whole log, and the tables they were fitted on."""

    rfm: pd.DataFrame  #: every customer's RFM at the log's end (the KPI report reads it)
    full: pd.DataFrame  #: the same with what the models read (times between buys, attributes)
    purchase: PurchaseModel | EnsembleModel
    spend: SpendModel | None
    chosen: str  #: the candidate it came from (the scorecard's name)


def refit_stage(
    evaluation: Evaluation,
    log: TransactionLog,
    config: Config,
    attributes: pd.DataFrame | None,
    notices: list[str],
    stages: StageLog,
) -> Refit:
    """The chosen purchase model and Gamma-Gamma (the optional stage ``spend_refit``) refitted
    on the whole log."""
    unit, end = config.features.time_unit, observation_end(log, config)
    rfm = full = build_rfm(log.compact, end, unit)
    if needs_log_gaps(evaluation.ranked_purchase_models):
        full = add_log_gaps(full, log.compact, end, unit)
    if config.covariates.used:
        full = with_covariates(full, attributes, config)
    purchase = refit_chosen(evaluation, full, config, notices)
    # the candidate it came from: a model shipped at its no-dropout limit has kind "nbd",
    # which is no candidate of the scorecard (nor the champion metric's source)
    chosen = getattr(purchase, "limit_of", None) or purchase.kind
    stages(f"Refitted {purchase.name} on the whole log ({len(full):,} customers)")
    spend = None
    if log.has_amounts and evaluation.spend_model is not None:
        spend = stages.optional(
            "spend_refit",
            lambda: refit_spend(evaluation, full, config, notices),
            "no value scores",
        )
    if spend is not None:
        stages(f"Refitted Gamma-Gamma on {spend.n_customers:,} repeat buyers")
    return Refit(rfm, full, purchase, spend, chosen)
