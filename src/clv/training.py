"""Training: choose a purchase model on a holdout, then refit it and Gamma-Gamma on the whole log.

1. Clean the log (:mod:`clv.data`).
2. Split it at ``train.calibration_end`` — by default ``train.holdout`` time units before the
   last day — and build calibration RFM and holdout outcomes (:mod:`clv.features`).
3. Fit every candidate purchase model on the calibration part and score its forecast of holdout
   purchases next to the naive rate baseline (:mod:`clv.evaluation`). The model with the lowest
   holdout MAE is chosen.
4. Refit the chosen model, and Gamma-Gamma when the log has amounts, on RFM over the whole log,
   and write the bundle (:mod:`clv.bundle`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from clv.btyd import PurchaseModel, display_name, fit_purchase_model
from clv.bundle import Bundle, save_bundle
from clv.config import DAYS_PER_UNIT, Config
from clv.data import CleaningReport, TransactionLog, load_transactions
from clv.errors import DataValidationError
from clv.evaluation import PurchaseScore, naive_rate, purchase_score, scores_table
from clv.features import build_calibration_holdout, build_rfm
from clv.spend import SpendModel, fit_spend_model


@dataclass(frozen=True)
class Split:
    """A calibration/holdout split of a log."""

    calibration_end: pd.Timestamp
    observation_end: pd.Timestamp
    duration: float  # holdout length in the time unit


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    bundle: Bundle
    path: Path
    split: Split
    scores: list[PurchaseScore]
    calibration_models: dict[str, PurchaseModel]
    report: CleaningReport
    notices: list[str] = field(default_factory=list)

    @property
    def scores_frame(self) -> pd.DataFrame:
        """The holdout comparison, one row per model and baseline."""
        return scores_table(self.scores)


def choose_split(log: TransactionLog, config: Config) -> Split:
    """Return the calibration/holdout split the config asks for, checked against the log.

    Raises
    ------
    DataValidationError
        When the calibration period or the holdout would be empty.
    """
    unit = config.features.time_unit
    first = pd.Timestamp(log.report.first_date)
    end = pd.Timestamp(log.report.last_date)
    if config.train.calibration_end is not None:
        cal_end = pd.Timestamp(config.train.calibration_end)
    else:
        days = round(config.train.holdout * DAYS_PER_UNIT[unit])
        cal_end = end - pd.Timedelta(days=days)
    span = (end - first).days / DAYS_PER_UNIT[unit]
    if not first <= cal_end < end:
        raise DataValidationError(
            f"The log spans {first.date()} .. {end.date()} ({span:.1f} {unit}s); a calibration "
            f"period ending {cal_end.date()} leaves no calibration or no holdout. Use a shorter "
            "--holdout or a --calibration-end inside the log."
        )
    return Split(cal_end, end, (end - cal_end).days / DAYS_PER_UNIT[unit])


def compare_purchase_models(
    calibration: pd.DataFrame, config: Config
) -> tuple[dict[str, PurchaseModel], list[PurchaseScore]]:
    """Fit each candidate on calibration RFM; score holdout purchases, naive baseline last."""
    unit, settings = config.features.time_unit, config.train
    duration = float(calibration["duration_holdout"].iloc[0])
    actual = calibration["frequency_holdout"].to_numpy()
    x, t_x, T = (calibration[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    models, scores = {}, []
    for kind in settings.candidates:
        model = fit_purchase_model(
            kind, calibration, unit, settings.penalizer, settings.retry_penalizer, settings.seed
        )
        models[kind] = model
        scores.append(
            purchase_score(model.name, model.expected_purchases(duration, x, t_x, T), actual)
        )
    scores.append(purchase_score("naive rate", naive_rate(x, T, duration), actual))
    return models, scores


def train(config: Config) -> TrainResult:
    """Run the whole training job described in the module docstring.

    Parameters
    ----------
    config : Config
        Data source and column mapping, time unit, split, candidates and output folder.

    Returns
    -------
    TrainResult
        The bundle (already written to ``config.train.model_dir``) and the holdout comparison.
    """
    log = load_transactions(config.data.transactions, config.data)
    unit = config.features.time_unit
    split = choose_split(log, config)
    calibration = build_calibration_holdout(
        log.frame, split.calibration_end, split.observation_end, unit
    )
    models, scores = compare_purchase_models(calibration, config)
    chosen = min(
        models, key=lambda kind: next(s.mae for s in scores if s.model == display_name(kind))
    )

    full = build_rfm(log.frame, split.observation_end, unit)
    settings = config.train
    purchase = fit_purchase_model(
        chosen, full, unit, settings.penalizer, settings.retry_penalizer, settings.seed
    )
    spend: SpendModel | None = None
    notices: list[str] = []
    if log.has_amounts:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            spend = fit_spend_model(full, settings.penalizer, settings.retry_penalizer)
        for item in caught:
            notices.append(str(item.message))
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
    else:
        notices.append("The log has no amount column: purchase models only, no value columns.")

    bundle = Bundle(
        purchase=purchase,
        spend=spend,
        config=config.to_dict(),
        fingerprint=log.fingerprint(),
        cleaning=log.report.to_dict(),
        selection={
            "chosen": chosen,
            "criterion": "holdout MAE of purchases",
            "calibration_end": str(split.calibration_end.date()),
            "observation_end": str(split.observation_end.date()),
            "holdout_length": split.duration,
            "time_unit": unit,
            "customers": len(calibration),
            "scores": [s.to_dict() for s in scores],
            "calibration_params": {k: m.params for k, m in models.items()},
        },
        notices=notices,
    )
    path = save_bundle(bundle, config.train.model_dir)
    return TrainResult(bundle, path, split, scores, models, log.report, notices)
