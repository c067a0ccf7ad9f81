"""Champion vs challenger on the same ground: re-evaluate the champion on the challenger's split.

A challenger's holdout score and the champion's stored score come from different data (another
log, another cutoff), so they are never compared directly. Instead the champion's configuration
— its purchase model and fitting settings, read from its bundle — is refitted on the
challenger's calibration period (fits take seconds) and scored on the same holdout customers.
The per-customer losses of the champion metric (Poisson deviance, squared or absolute error of
holdout purchases) are then compared by a paired test: the challenger is promoted only when its
mean loss is lower at one-sided 5 % (z > 1.645), because differences of a few thousandths on a
holdout are mostly noise.

A champion trained on a log with another column mapping or time unit, or on data from a period
that does not overlap the challenger's log, is not comparable: the decision says so and the
challenger is registered without promotion.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clv import metrics
from clv.config import ONE_SIDED_Z_5PCT, ChurnConfig
from clv.models.fitting import fit_purchase_model, refit_mixture
from clv.models.groups import SCORE_ROWS, per_customer
from clv.models.registry import STACKED, purchase_process

#: Per-customer loss of each purchase metric that can decide promotion (lower is better).
LOSSES = {
    "poisson_deviance": metrics.unit_poisson_deviance,
    "rmse": lambda y, mu: (y - mu) ** 2,
    "mae": lambda y, mu: np.abs(y - mu),
}


def comparable(challenger: dict[str, Any], champion: dict[str, Any]) -> str | None:
    """Why two bundles' data cannot be compared (None when they can).

    ``challenger`` and ``champion`` are bundle manifests' ``config`` and ``data_fingerprint``
    as ``{"config": …, "fingerprint": …}``.
    """
    keys = ("customer_col", "date_col", "amount_col")
    new, old = challenger["config"]["data"], champion["config"]["data"]
    different = [k for k in keys if new.get(k) != old.get(k)]
    if different:
        return (
            "the champion was trained on a log with other columns ("
            + ", ".join(f"{k}: {old.get(k)!r} vs {new.get(k)!r}" for k in different)
            + ")"
        )
    a, b = challenger["fingerprint"], champion["fingerprint"]
    if a["last_date"] < b["first_date"] or b["last_date"] < a["first_date"]:
        return (
            f"the champion's log ({b['first_date']} .. {b['last_date']}) does not overlap this "
            f"one ({a['first_date']} .. {a['last_date']}): an unrelated customer base"
        )
    return None


def compare_on_same_split(
    evaluation: Any, chosen: str, champion_bundle: Any, metric: str
) -> dict[str, Any]:
    """Refit the champion's purchase model on the challenger's calibration data and test.

    Parameters
    ----------
    evaluation : clv.evaluation.Evaluation
        The challenger's evaluation (calibration table, holdout predictions, split).
    chosen : str
        The challenger's chosen purchase model kind.
    champion_bundle : clv.bundle.Bundle
        The current champion.
    metric : str
        ``purchases.chosen.<poisson_deviance|rmse|mae>``.

    Returns
    -------
    dict
        ``challenger_value`` and ``champion_value`` (the metric on the same holdout), the mean
        loss difference, its standard error, ``z`` and ``promote``.
    """
    name = metric.removeprefix("purchases.chosen.")
    loss = LOSSES[name]
    settings = champion_bundle.config.get("train", {})
    kind = champion_bundle.selection.get("chosen", champion_bundle.purchase.kind)
    unit = evaluation.scorecard["protocol"]["time_unit"]
    penalizer = float(settings.get("penalizer", 0.0))
    retry = float(settings.get("retry_penalizer", 0.001))
    if kind == STACKED:  # the champion's recipe: its members refitted here, at its weights
        members = [m.kind for m in champion_bundle.purchase.members]
        gaps = [k for k in members if purchase_process(k).needs_log_gaps]  # MBG/CNBD-k's
        cal = evaluation.calibration_for(gaps[0] if gaps else kind)
        refit, _ = refit_mixture(champion_bundle.purchase, cal, unit, penalizer, retry)
    else:
        cal = evaluation.calibration_for(kind)
        refit = fit_purchase_model(
            kind, cal, unit, penalizer, retry, champion_bundle.config.get("covariates")
        )
    x, t_x, T = (cal[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    actual = cal["frequency_holdout"].to_numpy(dtype=float)
    t = evaluation.split.duration
    forecast = per_customer(
        refit, cal, lambda m, rows: m.expected_purchases(t, x[rows], t_x[rows], T[rows])
    )
    champion_losses = loss(actual, forecast)
    challenger_losses = loss(actual, evaluation.predictions[chosen])
    gain = champion_losses - challenger_losses  # > 0 where the challenger is better
    se = float(gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else 0.0
    z = float(gain.mean() / se) if se > 0 else 0.0

    def value(losses: np.ndarray) -> float:
        return float(np.sqrt(losses.mean()) if name == "rmse" else losses.mean())

    return {
        "champion_model": kind,
        "challenger_value": value(challenger_losses),
        "champion_value": value(champion_losses),
        "mean_loss_difference": float(gain.mean()),
        "standard_error": se,
        "z": z,
        "promote": z > ONE_SIDED_Z_5PCT,
    }


def decide(
    result: Any, config_tree: dict[str, Any], champion_bundle: Any | None, metric: str
) -> dict[str, Any]:
    """Champion or challenger for a finished training run (module docstring).

    ``result`` is the :class:`clv.training.TrainResult`; ``champion_bundle`` the current
    champion's bundle (None when there is none). Returns ``alias``, a one-line ``decision`` and
    the numbers behind it.
    """
    bundle = result.bundle
    chosen = bundle.selection["chosen"]
    if champion_bundle is None:
        return {"alias": "champion", "decision": "first champion"}
    reason = comparable(
        {"config": config_tree, "fingerprint": bundle.fingerprint},
        {"config": champion_bundle.config, "fingerprint": champion_bundle.fingerprint},
    )
    if reason is not None:
        return {"alias": "challenger", "decision": f"not compared: {reason}"}
    name = metric.removeprefix("purchases.chosen.")
    if metric == CHURN_METRIC:
        return _decide_churn(result, champion_bundle)
    if not metric.startswith("purchases.chosen.") or name not in LOSSES:
        return {
            "alias": "challenger",
            "decision": f"not compared: {metric} cannot be re-evaluated on this split (use "
            f"purchases.chosen.poisson_deviance, .rmse, .mae or {CHURN_METRIC}); promote by hand "
            "with clv promote",
        }
    test = compare_on_same_split(result.evaluation, chosen, champion_bundle, metric)
    return _outcome(test, metric, f"the champion's {test['champion_model']} refitted", "paired")


def _outcome(test: dict[str, Any], measured: str, champion: str, statistic: str) -> dict[str, Any]:
    """The alias and a one-line decision from a test of :func:`compare_on_same_split` or
    :func:`compare_churn_on_same_split`."""
    verdict = "promoted" if test["promote"] else "not promoted"
    decision = (
        f"{verdict}: on this split {measured} {test['challenger_value']:.4f} vs {champion} "
        f"{test['champion_value']:.4f}, {statistic} z = {test['z']:.2f} "
        f"(promotion needs z > {ONE_SIDED_Z_5PCT})"
    )
    return {"alias": "champion" if test["promote"] else "challenger", "decision": decision, **test}


CHURN_METRIC = "churn.churn_model.roc_auc"


def compare_churn_on_same_split(result: Any, champion_bundle: Any) -> dict[str, Any] | str:
    """Retrain the champion's churn configuration for the challenger's evaluation window and
    compare the two shipped scores' ROC AUC on the same customers and labels (DeLong).

    Returns the test, or the reason the two cannot be compared.
    """
    from dataclasses import replace

    from clv import units
    from clv.churn import paired_auc_test, scores_by_block, train_churn_window

    ev = result.evaluation
    if ev.churn_frame is None or champion_bundle.churn is None:
        return "one of the two models has no churn score"
    if not champion_bundle.churn.has_classifier:
        return "the champion has no churn classifier (its training skipped it)"
    champion = champion_bundle.churn
    if champion.attributes:
        return "the champion's churn model uses customer attributes or surveys"
    unit = ev.scorecard["protocol"]["time_unit"]
    horizon = ev.scorecard["churn_protocol"]["horizon"]
    days = units.whole_days(horizon, unit)
    if units.whole_days(champion.horizon, champion.time_unit) != days:
        return (
            f"the champion's churn horizon ({champion.horizon:g} {champion.time_unit}s) is not "
            f"this run's ({horizon:g} {unit}s)"
        )
    trained = champion_bundle.config.get("train", {})
    refit, _ = train_churn_window(
        result.log.compact,
        ev.split.calibration_end,
        days,
        unit,
        int(trained.get("seed", 42)),
        trained.get("churn_max_customers"),
        ChurnConfig.model_validate(champion_bundle.config.get("churn", {})),
    )
    btyd = ev.churn_model.btyd  # the same BG/NBD features as the challenger's
    refit = replace(refit, btyd=btyd)
    # the evaluation keeps the scores, not the features: built again, a block at a time
    ids, scored = scores_by_block(
        result.log.compact,
        ev.split.calibration_end,
        unit,
        btyd,
        horizon,
        lambda features: {"churn_probability": refit.predict_proba(features)},
        SCORE_ROWS,
    )
    frame = ev.churn_frame
    if not np.array_equal(ids.to_numpy(), frame["customer_id"].to_numpy()):
        raise RuntimeError("the churn features built again are not the evaluation's customers")
    test = paired_auc_test(
        frame["churned"].to_numpy(),
        frame["churn_probability"].to_numpy(),
        scored["churn_probability"],
    )
    return {
        "challenger_value": test["challenger_auc"],
        "champion_value": test["baseline_auc"],
        "champion_model": f"churn {refit.choice}",
        "z": test["z"],
        "promote": test["z"] > ONE_SIDED_Z_5PCT,
    }


def _decide_churn(result: Any, champion_bundle: Any) -> dict[str, Any]:
    from clv.stages import StageLog

    stages = getattr(result, "stages", None) or StageLog()
    test = stages.optional(
        "churn_promotion",
        lambda: compare_churn_on_same_split(result, champion_bundle),
        "the new model stays a challenger",
    )
    if test is None:
        test = f"the churn test failed ({stages.skipped['churn_promotion']['reason']})"
    if isinstance(test, str):
        return {"alias": "challenger", "decision": f"not compared: {test}"}
    return _outcome(test, "churn ROC AUC", "the champion's churn configuration retrained", "DeLong")
