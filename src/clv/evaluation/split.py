"""The split: calibration and holdout periods, the calibration table, whether it is enough to
fit on, and how regular purchase timing is (which adds MBG/CNBD-k when asked)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from clv import units
from clv.config import Config
from clv.data.compact import CUSTOMER
from clv.data.log import TransactionLog
from clv.errors import DataValidationError
from clv.features import add_log_gaps, build_calibration_holdout, regularity
from clv.models.registry import MIXTURES, base_kind, purchase_process


@dataclass(frozen=True)
class Split:
    """A calibration/holdout split of a log (days inclusive; duration in the time unit)."""

    calibration_end: pd.Timestamp
    observation_end: pd.Timestamp
    duration: float


def observation_end(log: TransactionLog, config: Config) -> pd.Timestamp:
    """The last day observed: ``train.as_of`` when set, else the log's last purchase day."""
    if config.train.as_of is not None:
        return pd.Timestamp(config.train.as_of)
    return pd.Timestamp(log.report.last_date)


def choose_split(log: TransactionLog, config: Config) -> Split:
    """Return the calibration/holdout split the config asks for, checked against the log.

    Raises
    ------
    DataValidationError
        When the calibration period or the holdout would be empty.
    """
    unit = config.features.time_unit
    first = pd.Timestamp(log.report.first_date)
    end = observation_end(log, config)
    if config.train.calibration_end is not None:
        cal_end = pd.Timestamp(config.train.calibration_end)
    else:
        cal_end = end - pd.Timedelta(days=units.whole_days(config.train.holdout, unit))
    span = units.in_units((end - first).days, unit)
    if not first <= cal_end < end:
        raise DataValidationError(
            f"The log spans {first.date()} .. {end.date()} ({span:.1f} {unit}s); a calibration "
            f"period ending {cal_end.date()} leaves no calibration or no holdout. Use a shorter "
            "--holdout or a --calibration-end inside the log."
        )
    return Split(cal_end, end, units.in_units((end - cal_end).days, unit))


#: The least a calibration period must hold for the purchase models: customers, and repeat
#: buyers (whose purchases are all a model learns the purchase rate and the dropout from).
MIN_CUSTOMERS, MIN_REPEAT_BUYERS = 100, 20


def check_enough(cal: pd.DataFrame, split: Split) -> None:
    """Raise when the calibration period is too small to fit a purchase model on.

    Raises
    ------
    DataValidationError
        Naming how many customers and repeat buyers it has and what is needed.
    """
    customers, repeat = len(cal), int((cal["frequency"] > 0).sum())
    if customers >= MIN_CUSTOMERS and repeat >= MIN_REPEAT_BUYERS:
        return
    raise DataValidationError(
        f"The calibration period (to {split.calibration_end.date()}) has {customers:,} "
        f"customers, {repeat:,} of them repeat buyers: too few to fit a purchase model on. clv "
        f"needs at least {MIN_CUSTOMERS} customers and {MIN_REPEAT_BUYERS} repeat buyers there "
        "(their repeat purchases are all a model learns the purchase rate and the dropout "
        "from). Give a longer log, or a shorter --holdout so that more of it is calibration."
    )


def churn_horizon(config: Config, split: Split) -> float:
    """The churn horizon H in the time unit: ``train.churn_horizon``, else the holdout length."""
    return float(config.train.churn_horizon or split.duration)


def needs_log_gaps(kinds: Any) -> bool:
    """Whether any of these candidates reads the times between purchases (MBG/CNBD-k)."""
    return any(k not in MIXTURES and purchase_process(base_kind(k)).needs_log_gaps for k in kinds)


#: Above this Wheat-Morrison k, inter-purchase times are regular enough to say so.
REGULAR = 1.5


def with_regularity_model(candidates: list[str], timing: dict[str, Any], auto: bool) -> list[str]:
    """The candidates, with MBG/CNBD-k among them when purchase timing is regular (``auto``:
    ``train.regularity_model``) and it is not already: on Poisson-like timing its k is 1 and
    it is MBG/NBD, a fit that costs seconds for nothing; on simulated regular buyers it is the
    model that wins (``benchmarks/zoo.py``: 4–34 % lower holdout deviance on Erlang-2 to -5
    buyers), on the grocery log it is not (the setting's description).

    >>> with_regularity_model(["bgnbd"], {"k": 2.8, "customers": 500}, True)
    ['bgnbd', 'mbgcnbd']
    >>> with_regularity_model(["bgnbd"], {"k": 1.1, "customers": 500}, True)
    ['bgnbd']
    """
    k = timing["k"]
    if auto and "mbgcnbd" not in candidates and np.isfinite(k) and k >= REGULAR:
        mixtures = [c for c in candidates if c in MIXTURES]  # fitted after the models they mix
        return [c for c in candidates if c not in MIXTURES] + ["mbgcnbd", *mixtures]
    return list(candidates)


def describe_regularity(timing: dict[str, Any], candidates: Any, configured: Any = None) -> str:
    """One line on how regular purchase timing is (:func:`clv.features.regularity`) and what
    the candidates do about it (``configured``: ``train.candidates``, when they differ)."""
    k, customers = timing["k"], timing["customers"]
    if not customers or not np.isfinite(k):
        return "Purchase regularity: too few customers with 3+ purchases to measure it"
    head = (
        f"Purchase regularity (Wheat-Morrison, last two gaps of {customers:,} customers with "
        f"3+ purchases): k = {k:.2f}"
    )
    if k < REGULAR:
        return f"{head}, about as random as Poisson purchasing (k = 1)"
    if "mbgcnbd" not in candidates:
        advice = "add mbgcnbd (MBG/CNBD-k) to train.candidates, or set train.regularity_model"
    elif configured is not None and "mbgcnbd" not in configured:
        advice = "MBG/CNBD-k joins the candidates (train.regularity_model)"
    else:
        advice = "MBG/CNBD-k is among the candidates"
    return f"{head}: customers buy at regular intervals; {advice}"


def with_covariates(cal: pd.DataFrame, attributes: pd.DataFrame, config: Config) -> pd.DataFrame:
    """The calibration table with the covariates' attribute columns (missing values stay
    missing: the fits say which customers lack one)."""
    names = config.covariates.attributes
    absent = [n for n in names if n not in attributes]
    if absent:
        raise DataValidationError(
            f"Covariate columns {absent} are not in the customer list (it has "
            f"{list(attributes.columns)}). Name columns of --customers under covariates."
        )
    return cal.merge(attributes[[CUSTOMER, *names]], on=CUSTOMER, how="left", validate="one_to_one")


@dataclass
class CalibrationTable:
    """The calibration table (one row per customer: the calibration RFM and the holdout's
    purchases and revenue), the regularity of purchase timing measured on it, and the
    candidates that go with it (MBG/CNBD-k added when asked and timing is regular)."""

    frame: pd.DataFrame
    timing: dict[str, Any]
    candidates: list[str]

    def history(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each customer's x, t_x and T."""
        cal = self.frame
        return tuple(cal[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))

    @property
    def actual(self) -> np.ndarray:
        """Each customer's holdout purchases."""
        return self.frame["frequency_holdout"].to_numpy(dtype=float)


def calibration_table(
    log: TransactionLog, config: Config, split: Split, attributes: pd.DataFrame | None
) -> CalibrationTable:
    """The split's calibration table with what its candidates read: the times between
    purchases for a regularity model, the attributes for covariates; checked to be enough to
    fit on (:func:`check_enough`)."""
    unit, settings = config.features.time_unit, config.train
    cal = build_calibration_holdout(log.compact, split.calibration_end, split.observation_end, unit)
    timing = regularity(log.compact, split.calibration_end)
    candidates = with_regularity_model(settings.candidates, timing, settings.regularity_model)
    if needs_log_gaps(candidates):  # a regularity model reads the times between buys
        cal = add_log_gaps(cal, log.compact, split.calibration_end, unit)
    if config.covariates.used:  # the attributes the covariate candidates read
        cal = with_covariates(cal, attributes, config)
    check_enough(cal, split)
    return CalibrationTable(cal, timing, candidates)
