"""Candidates with customer covariates: the calibration table with the attributes, each
model's effects with standard errors, the likelihood-ratio test and the paired holdout gain
that decides whether they compete; the same for Gamma-Gamma's spend covariates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from clv import metrics
from clv.config import ONE_SIDED_Z_5PCT, Config
from clv.errors import ModelFitError
from clv.evaluation.candidates import Candidates
from clv.evaluation.scores import purchase_metrics
from clv.evaluation.split import CalibrationTable, Split
from clv.models.fitted import PurchaseModel
from clv.models.fitting import fit_purchase_model
from clv.models.gamma_gamma import SpendModel
from clv.models.groups import per_customer, spend_per_transaction
from clv.models.registry import WITH_COVARIATES
from clv.stages import StageLog

#: The holdout deviance gain of covariates counts as an improvement above this paired z
#: (one-sided 5 %), as a promotion does.
COVARIATE_MIN_Z = ONE_SIDED_Z_5PCT


def _effects(model: Any, plain: Any, gain: np.ndarray) -> tuple[dict[str, Any], float]:
    """What a model with covariates says against its plain fit: the effects with standard
    errors and p-values, the likelihood-ratio test, and whether the per-customer holdout loss
    ``gain`` (plain − with covariates) is significant (``improved``: paired z above the
    one-sided 5 % level); and that z."""
    from scipy.stats import chi2, norm

    spread = gain.std(ddof=1)
    gain_z = float(gain.mean() / (spread / np.sqrt(gain.size))) if spread > 0 else 0.0
    df = len(model.coefficients)
    lr = 2.0 * (model.log_likelihood - plain.log_likelihood)
    ses = model.standard_errors
    return {
        "converged": True,
        "coefficients": {
            c: {
                "estimate": value,
                "se": ses.get(c),
                "p_value": float(2 * norm.sf(abs(value / ses[c]))) if ses.get(c) else None,
            }
            for c, value in model.coefficients.items()
        },
        "log_likelihood": model.log_likelihood,
        "plain_log_likelihood": plain.log_likelihood,
        "lr_statistic": lr,
        "lr_df": df,
        "lr_p_value": float(chi2.sf(max(lr, 0.0), df)),
        "improved": bool(gain_z > COVARIATE_MIN_Z),
    }, gain_z


def spend_covariate_effects(
    cal: pd.DataFrame,
    plain: SpendModel,
    purchases: np.ndarray,
    config: Config,
    report: Callable[[str], None],
) -> tuple[dict[str, Any], Any]:
    """Gamma-Gamma refitted with the config's spend covariates against the plain fit (the
    scorecard's ``spend_covariates``), and the spend model to use: the one with covariates when
    it improved the holdout (or ``require_gain`` is off), else the plain one.

    The holdout check is the squared error of each customer's holdout revenue forecast
    (``purchases`` × expected spend per transaction: the chosen purchase model's, the same for
    both), paired; ``improved`` above the one-sided 5 % level.
    """

    from clv.models.spend_covariates import fit_configured

    settings = config.covariates
    try:
        model = fit_configured(
            cal, plain, settings.model_dump(), config.train.penalizer, config.train.retry_penalizer
        )
    except ModelFitError as exc:
        report(f"Gamma-Gamma with covariates did not converge; the plain model is used: {exc}")
        return {"converged": False, "message": str(exc)}, plain
    revenue = cal["revenue_holdout"].to_numpy(dtype=float)
    m = cal["monetary_value"].to_numpy(dtype=float)
    without = purchases * plain.expected_average_value(cal["frequency"].to_numpy(float), m)
    with_ = purchases * spend_per_transaction(model, cal)
    section, gain_z = _effects(model, plain, (revenue - without) ** 2 - (revenue - with_) ** 2)
    section |= {
        "revenue_rmse": float(np.sqrt(np.mean((revenue - with_) ** 2))),
        "plain_revenue_rmse": float(np.sqrt(np.mean((revenue - without) ** 2))),
        "revenue_gain_z": gain_z,
    }
    lr, df = section["lr_statistic"], section["lr_df"]
    used = section["improved"] or not settings.require_gain
    section["used"] = used
    report(
        f"Gamma-Gamma + covariates: likelihood-ratio {lr:.1f} on {df} df (p "
        f"{section['lr_p_value']:.2g}); holdout revenue RMSE {section['revenue_rmse']:.2f} "
        f"against {section['plain_revenue_rmse']:.2f} without (paired z {gain_z:.2f}: "
        f"{'improved' if section['improved'] else 'no significant gain'}; "
        f"{'used' if used else 'not used'})"
    )
    return section, model if used else plain


def covariate_kinds(models: dict[str, Any]) -> list[str]:
    """The fitted candidates that take covariates (single models with ``covariate_links``)."""
    return [
        k for k, m in models.items() if isinstance(m, PurchaseModel) and m.process.covariate_links
    ]


def covariate_effects(
    models: dict[str, Any],
    predictions: dict[str, np.ndarray],
    actual: metrics.Actual,
    config: Config,
    report: Callable[[str], None],
) -> dict[str, Any]:
    """Each candidate fitted with covariates against its plain fit (the scorecard's
    ``covariates``): the effects with standard errors and p-values, the likelihood-ratio test
    on the calibration period, and a paired test of the per-customer holdout Poisson deviance
    (``deviance_gain_z`` > 0: the covariates forecast better; ``improved`` above the one-sided
    5 % level)."""

    out: dict[str, Any] = {"models": {}}
    for kind in covariate_kinds(models):
        name = kind + WITH_COVARIATES
        if name not in models:
            out["models"][kind] = {"converged": False}
            continue
        model, plain = models[name], models[kind]
        design = model.design
        out |= {
            "columns": list(design.columns),
            "reference": {c.name: c.levels[0] for c in design.covariates if c.levels},
            "l2": dict(model.l2),
        }
        gain = metrics.unit_poisson_deviance(
            actual.values, predictions[kind]
        ) - metrics.unit_poisson_deviance(actual.values, predictions[name])
        fit, gain_z = _effects(model, plain, gain)
        fit |= {"holdout": purchase_metrics(actual, predictions[name]), "deviance_gain_z": gain_z}
        lr, df = fit["lr_statistic"], fit["lr_df"]
        out["models"][kind] = fit
        report(
            f"{model.name}: likelihood-ratio {lr:.1f} on {df} df (p {fit['lr_p_value']:.2g}); "
            f"holdout Poisson deviance {fit['holdout']['poisson_deviance']:.4f} against "
            f"{gain.mean() + fit['holdout']['poisson_deviance']:.4f} without (paired z "
            f"{gain_z:.2f}: {'improved' if fit['improved'] else 'no significant gain'})"
        )
    return out


def fit_covariate_candidates(
    fits: Candidates, table: CalibrationTable, split: Split, config: Config, report: StageLog
) -> None:
    """Each fitted candidate that takes covariates, fitted again with them from its plain fit,
    as the candidate ``<model>_covariates`` with its holdout forecast (added to ``fits``)."""
    unit, settings = config.features.time_unit, config.train
    x, t_x, T = table.history()
    for kind in covariate_kinds(fits.models):
        name = kind + WITH_COVARIATES
        try:
            model = fit_purchase_model(
                name,
                table.frame,
                unit,
                settings.penalizer,
                settings.retry_penalizer,
                config.covariates.model_dump(),
                plain_params=fits.models[kind].params,  # fitted already: the start
            )
        except ModelFitError as exc:
            fits.drop(name, exc, report)
            continue
        fits.models[name] = model
        fits.predictions[name] = per_customer(
            model,
            table.frame,
            lambda m, rows: m.expected_purchases(split.duration, x[rows], t_x[rows], T[rows]),
        )
