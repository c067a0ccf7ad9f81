"""The shipped churn model: LightGBM's trees in text form, the blend with the BTYD score and
the calibration, scored by blocks of customers; or the purchase model's P(no purchase) when
no classifier ships."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from clv import resources
from clv.churn.calibration import calibrated
from clv.churn.features import MONOTONE
from clv.config import ChurnConfig
from clv.data.compact import CUSTOMER
from clv.models.fitted import PurchaseModel


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The classifier's feature columns of a churn table: all but the customer id."""
    return [c for c in frame.columns if c != CUSTOMER]


def design(
    frame: pd.DataFrame, columns: list[str], categories: dict[str, list[str]]
) -> pd.DataFrame:
    """The model matrix: numeric columns as float, categorical ones with fixed categories."""
    out = {}
    for col in columns:
        values = frame[col] if col in frame else pd.Series(np.nan, index=frame.index)
        if col in categories:
            out[col] = pd.Categorical(
                values.astype("str").where(values.notna()), categories=categories[col]
            )
        else:
            out[col] = pd.to_numeric(values, errors="coerce").astype(float)
    return pd.DataFrame(out, index=frame.index)


#: Customers per block of a booster's predictions (:meth:`ChurnModel.raw_score`): the model
#: matrix of 5.5M customers, and LightGBM's copy of it, held 1.8 GB at once.
PREDICT_ROWS = 500_000


def lgb_params(columns: list[str], seed: int, settings: ChurnConfig, rows: int) -> dict[str, Any]:
    """LightGBM's parameters for a table of ``rows`` customers: the config's settings, the
    monotone constraints of :data:`MONOTONE`, and the threads the run may use."""
    return {
        "objective": "binary",
        "learning_rate": settings.learning_rate,
        "num_leaves": settings.num_leaves,
        "min_data_in_leaf": settings.min_data_in_leaf,
        "feature_fraction": settings.feature_fraction,
        "bagging_fraction": settings.bagging_fraction,
        "bagging_freq": 1,
        "lambda_l2": settings.lambda_l2,
        "monotone_constraints": [MONOTONE.get(c, 0) for c in columns],
        "seed": seed,
        "deterministic": True,
        "num_threads": resources.lightgbm_threads(rows),
        "verbose": -1,
    }


@dataclass
class ChurnModel:
    """A trained churn score for horizon ``horizon`` (in ``time_unit``).

    ``choice`` is ``lightgbm``, ``blend`` or ``btyd``; the raw score is
    ``w · LightGBM + (1 − w) · BG/NBD P(no purchase)`` with ``w = blend_weight``, then calibrated:
    ``1 / (1 + exp(−(a · logit(score) + c · logit(BG/NBD P(no purchase)) + b)))`` (``c = 0`` for
    plain Platt scaling; see the module docstring).
    """

    horizon: float
    time_unit: str
    btyd: PurchaseModel | None  # None before the caller sets the scoring BG/NBD, or no classifier
    choice: str
    blend_weight: float
    platt: dict[str, Any]
    features: list[str] = field(default_factory=list)
    categories: dict[str, list[str]] = field(default_factory=dict)
    attributes: list[str] = field(default_factory=list)
    booster_text: str | None = None
    validation: dict[str, Any] = field(default_factory=dict)
    window: dict[str, Any] = field(default_factory=dict)
    _booster: Any = field(default=None, repr=False, compare=False)

    @property
    def has_classifier(self) -> bool:
        """False for :func:`without_classifier`'s score (the shipped purchase model's)."""
        return self.choice != FROM_PURCHASE_MODEL

    def _lgb(self) -> Any:
        if self._booster is None and self.booster_text is not None:
            import lightgbm as lgb

            self._booster = lgb.Booster(model_str=self.booster_text)
        return self._booster

    def raw_score(self, features: pd.DataFrame) -> np.ndarray:
        """The uncalibrated score (LightGBM, blend or BG/NBD) for a feature frame."""
        btyd = features["p_no_purchase"].to_numpy(dtype=float)
        if self.blend_weight <= 0 or self._lgb() is None:
            return btyd
        booster = self._lgb()
        # always a thread count: LightGBM's is process-wide (resources.lightgbm_threads)
        threads = resources.lightgbm_threads(len(features))
        parts = [  # the model matrix a block at a time (one float column a feature)
            booster.predict(
                design(features.iloc[lo : lo + PREDICT_ROWS], self.features, self.categories),
                num_threads=threads,
            )
            for lo in range(0, len(features), PREDICT_ROWS)
        ]
        model = np.concatenate(parts) if parts else np.zeros(0)
        return self.blend_weight * model + (1.0 - self.blend_weight) * btyd

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of no purchase within the horizon."""
        btyd = features["p_no_purchase"].to_numpy(dtype=float)
        return calibrated(self.platt, self.raw_score(features), btyd)

    def to_dict(self) -> dict[str, Any]:
        """JSON part of the model (the booster is saved beside it in LightGBM's text format)."""
        return {
            "horizon": self.horizon,
            "time_unit": self.time_unit,
            "btyd": self.btyd.to_dict() if self.btyd else None,
            "choice": self.choice,
            "blend_weight": self.blend_weight,
            "platt": self.platt,
            "features": self.features,
            "categories": self.categories,
            "attributes": self.attributes,
            "validation": self.validation,
            "window": self.window,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], booster_text: str | None) -> ChurnModel:
        """Rebuild from :meth:`to_dict` output and the booster's text."""
        if data["blend_weight"] > 0 and booster_text is None:
            raise ValueError("the churn model's LightGBM file is missing")
        return cls(
            horizon=float(data["horizon"]),
            time_unit=data["time_unit"],
            btyd=PurchaseModel.from_dict(data["btyd"]) if data.get("btyd") else None,
            choice=data["choice"],
            blend_weight=float(data["blend_weight"]),
            platt=dict(data["platt"]),
            features=list(data["features"]),
            categories={k: list(v) for k, v in data["categories"].items()},
            attributes=list(data.get("attributes", [])),
            booster_text=booster_text,
            validation=data.get("validation", {}),
            window=data.get("window", {}),
        )


#: ``ChurnModel.choice`` of a bundle that ships no classifier (the churn stages were skipped,
#: :mod:`clv.stages`): churn probability is the shipped purchase model's P(no purchase) over the
#: horizon.
FROM_PURCHASE_MODEL = "purchase_model"


def without_classifier(horizon: float, time_unit: str, reason: str) -> ChurnModel:
    """The churn score of a run whose classifier could not be trained: the shipped purchase
    model's P(no purchase) within ``horizon``, uncalibrated (``validation.decision`` says why).

    Parameters
    ----------
    horizon : float
        The churn horizon H, in ``time_unit``.
    time_unit : str
        The bundle's time unit.
    reason : str
        Why there is no classifier (the skipped stage's reason).

    Returns
    -------
    ChurnModel
        With ``choice`` :data:`FROM_PURCHASE_MODEL`, no features and no booster.
    """
    return ChurnModel(
        horizon,
        time_unit,
        None,
        FROM_PURCHASE_MODEL,
        0.0,
        {"a": 1.0, "b": 0.0},
        validation={"decision": f"no churn classifier: {reason}"},
    )
