"""Spend and value on the holdout: Gamma-Gamma (with spend covariates when asked) fitted on the
calibration period, and each forecast's value metrics against the holdout revenue."""

from __future__ import annotations

from typing import Any

from clv import metrics
from clv.config import Config
from clv.data.log import TransactionLog
from clv.evaluation.candidates import Candidates
from clv.evaluation.covariate_fits import spend_covariate_effects
from clv.evaluation.result import best_model
from clv.evaluation.scores import NAIVE, customer_mean_spend, value_metrics
from clv.evaluation.split import CalibrationTable, Split
from clv.models.gamma_gamma import SpendModel, fit_spend_model
from clv.models.groups import spend_per_transaction
from clv.stages import StageLog


def value_stage(
    log: TransactionLog,
    split: Split,
    table: CalibrationTable,
    fits: Candidates,
    card: dict[str, Any],
    config: Config,
    report: StageLog,
) -> SpendModel | None:
    """The spend model the scorecard judges (the optional stages ``gamma_gamma`` and
    ``spend_covariates``) and the scorecard's ``value`` and ``value_deciles``; None for a log
    without amounts or when Gamma-Gamma cannot be fitted."""
    if not log.has_amounts:
        return None
    settings, cal, predictions = config.train, table.frame, fits.predictions
    spend = report.optional(
        "gamma_gamma",
        lambda: fit_spend_model(cal, settings.penalizer, settings.retry_penalizer),
        "purchase and churn scores without value",
    )
    if spend is not None and config.covariates.spend:
        chosen = best_model(card, fits.models, settings.selection_metric)
        plain = spend
        card["spend_covariates"], spend = report.optional(
            "spend_covariates",
            lambda: spend_covariate_effects(cal, plain, predictions[chosen], config, report),
            "the plain Gamma-Gamma competes alone",
            ({}, plain),
        )
    if spend is None:
        return None
    revenue = cal["revenue_holdout"].to_numpy(dtype=float)
    value = spend_per_transaction(spend, cal)
    mean_spend = customer_mean_spend(log, cal, split)
    earned = metrics.Actual(revenue)
    card["value"] = {
        k: value_metrics(earned, p * value) for k, p in predictions.items() if k != NAIVE
    }
    card["value"][NAIVE] = value_metrics(earned, predictions[NAIVE] * mean_spend)
    best = best_model(card, fits.models, settings.selection_metric)
    card["value_deciles"] = metrics.decile_table(revenue, predictions[best] * value).to_dict(
        "records"
    )
    report(f"Fitted Gamma-Gamma on {spend.n_customers:,} repeat buyers")
    return spend
