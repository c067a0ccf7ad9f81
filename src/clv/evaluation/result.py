"""The evaluation's result, and the ranking of its candidates by their mean holdout loss."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from clv.data.log import TransactionLog
from clv.errors import DataValidationError
from clv.evaluation.split import Split, needs_log_gaps
from clv.features import add_log_gaps
from clv.models.ensemble import EnsembleModel
from clv.models.fitted import PurchaseModel
from clv.models.gamma_gamma import SpendModel
from clv.models.registry import WITH_COVARIATES, display_name

if TYPE_CHECKING:
    from clv.churn import ChurnModel


#: A trained churn model and its window's note (:func:`clv.churn.train_churn_window`).
ChurnResult = tuple["ChurnModel", str | None]


@dataclass
class Evaluation:
    """The scorecard and what was fitted to make it (all on data up to the cutoff)."""

    split: Split
    calibration: pd.DataFrame
    purchase_models: dict[str, PurchaseModel | EnsembleModel]
    spend_model: SpendModel | None
    churn_model: Any | None
    scorecard: dict[str, Any]
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    #: The evaluation window's customers (``customer_id``, sorted), their labels
    #: (``churned``), the shipped score (``churn_probability``) and the BG/NBD baseline's
    #: (``p_no_purchase``); None without a churn section.
    churn_frame: pd.DataFrame | None = None

    selection_metric: str = "poisson_deviance"
    log: TransactionLog | None = None

    def calibration_for(self, kind: str) -> pd.DataFrame:
        """The calibration table with what candidate ``kind`` reads: the times between
        purchases for a regularity model (e.g. a champion's, refitted on this split); the
        attributes of a model with covariates, which only a run with covariates has."""
        cal = self.calibration
        if needs_log_gaps([kind]) and "log_gap_sum" not in cal and self.log is not None:
            unit = self.scorecard["protocol"]["time_unit"]
            cal = add_log_gaps(cal, self.log.compact, self.split.calibration_end, unit)
        if kind.endswith(WITH_COVARIATES) and "covariates" not in self.scorecard:
            raise DataValidationError(
                f"{display_name(kind)} reads customer attributes, which this run did not: "
                "compare it on a run with the same covariates (and --customers)."
            )
        return cal

    @property
    def best_purchase_model(self) -> str:
        """The candidate with the lowest holdout ``selection_metric`` (a ``train`` setting)."""
        return best_model(self.scorecard, self.purchase_models, self.selection_metric)

    @property
    def ranked_purchase_models(self) -> list[str]:
        """The fitted candidates from the best holdout ``selection_metric`` to the worst."""
        best = self.best_purchase_model
        rest = [k for k in self.purchase_models if k != best]
        return [
            best,
            *sorted(
                rest, key=lambda k: mean_holdout_loss(self.scorecard, k, self.selection_metric)
            ),
        ]


def mean_holdout_loss(card: dict[str, Any], kind: str, metric: str) -> float:
    """The candidate's ``metric`` averaged over the holdout windows (:mod:`clv.origins`), or
    on the one holdout of an older scorecard."""
    if "selection" in card and kind in card["selection"]["mean_loss"]:
        value = card["selection"]["mean_loss"][kind]
        return float("inf") if value is None else value
    value = card["purchases"][kind][metric]
    return float("inf") if value is None else value


def best_model(card: dict[str, Any], candidates: Any, metric: str) -> str:
    """The candidate with the lowest holdout purchase ``metric`` averaged over the holdout
    windows (an infinite one never wins)."""
    return min(candidates, key=lambda kind: mean_holdout_loss(card, kind, metric))
