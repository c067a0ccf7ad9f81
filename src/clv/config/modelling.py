"""Settings of training: the split, the candidates and their choice, covariates, the churn
classifier and the threads a run may use."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from clv.config.base import ONE_SIDED_Z_5PCT, _Section


class TrainConfig(_Section):
    """Model selection on a calibration/holdout split, then a refit on the whole log."""

    candidates: list[str] = Field(
        default_factory=lambda: [
            "bgnbd",
            "mbgnbd",
            "pareto",
            "ggomnbd",
            "mbgcnbd",
            "ensemble",
            "stacked",
        ],
        description="Purchase models to compare on the holdout: bgnbd, mbgnbd, pareto, ggomnbd "
        "(Gamma-Gompertz/NBD, a dropout hazard that changes with age), mbgcnbd (MBG/CNBD-k, "
        "regular buyers), 'ensemble', the equal-weight mixture of BG/NBD, MBG/NBD and "
        "Pareto/NBD, and 'stacked', the mixture of every other model listed with weights that "
        "maximise the holdout log score. When GG/NBD's fit is at its Pareto/NBD limit, or "
        "MBG/CNBD-k's at k = 1 (MBG/NBD), one model competes for both: the larger, unless the "
        "smaller's fit is at an edge (no dropout, equal rates).",
    )
    regularity_model: bool = Field(
        False,
        description="Add mbgcnbd (MBG/CNBD-k) to candidates that do not list it when purchase "
        "timing is regular (Wheat-Morrison k >= 1.5 on the calibration period). The default "
        "candidates list it already.",
    )
    rolling_origin: bool = Field(
        True,
        description="Judge the candidates on a second holdout window too (the one before the "
        "latest, when the log is long enough) and choose by their mean score.",
    )

    @field_validator("candidates")
    @classmethod
    def _registered(cls, value: list[str]) -> list[str]:
        from clv.models.registry import CANDIDATES  # the registry names the models

        unknown = [k for k in value if k not in CANDIDATES]
        if unknown:
            raise ValueError(f"unknown purchase models {unknown}; choose from {list(CANDIDATES)}")
        return value

    selection_metric: Literal["poisson_deviance", "rmse", "mae"] = Field(
        "poisson_deviance",
        description="Holdout score that chooses the purchase model. Poisson deviance and RMSE "
        "are proper for a predicted mean; MAE is minimized by the median (0 for sparse counts) "
        "and rewards forecasting too little.",
    )
    holdout: float = Field(
        26.0, gt=0, description="Length of the holdout at the end of the log, in the time unit."
    )
    calibration_end: dt.date | None = Field(
        None, description="Last day of the calibration period; overrides 'holdout'."
    )
    penalizer: float = Field(0.0, ge=0, description="L2 penalizer for the first fit attempt.")
    retry_penalizer: float = Field(
        0.001, gt=0, description="Penalizer of the retry when the first fit does not converge."
    )
    seed: int = Field(
        42, description="Seed of the churn classifier and its cross-validation folds."
    )
    as_of: dt.date | None = Field(
        None, description="Use the log up to this day (later rows are ignored and counted)."
    )
    churn_horizon: float | None = Field(
        None, gt=0, description="Churn horizon H in the time unit; null means the holdout length."
    )
    churn_max_customers: int = Field(
        200_000,
        ge=1_000,
        description="LightGBM trains on at most this many customers (a stratified sample).",
    )
    customers: str | None = Field(
        None, description="CSV/Parquet customer table whose extra columns feed the churn model."
    )
    model_dir: Path = Field(
        Path("models/cdnow"),
        description="Folder of the served model: the champion's bundle (see model_dir_holds).",
    )
    model_dir_holds: Literal["champion", "latest"] = Field(
        "champion",
        description="'champion': a run that is only challenger writes <model_dir>-v<version> "
        "instead; 'latest': every run writes model_dir (a pipeline stage whose output is this "
        "run's model, e.g. DVC). Without MLflow every run writes model_dir.",
    )
    lock_wait: float = Field(
        0.0,
        ge=0,
        description="Seconds to wait when another run is writing model_dir; 0 stops at once "
        "with a message naming that run.",
    )


class CovariatesConfig(_Section):
    """Static customer covariates in the purchase models (:mod:`clv.models.covariates`): columns
    of ``train.customers`` that shift the purchase and dropout rates by ``exp(γᵀz)``. Each
    candidate that takes covariates is fitted with them beside its plain fit, and the scorecard
    compares the two on the holdout."""

    purchase: list[str] = Field(
        default_factory=list, description="Attributes that shift the purchase rate."
    )
    dropout: list[str] = Field(
        default_factory=list, description="Attributes that shift the dropout process."
    )
    categorical: list[str] = Field(
        default_factory=list,
        description="Attributes to one-hot encode (others must be numbers, used as they are).",
    )
    reference: dict[str, str] = Field(
        default_factory=dict,
        description="Reference level of a categorical attribute (default: first in sort order).",
    )
    l2_purchase: float = Field(
        0.0, ge=0, description="L2 penalty on the purchase coefficients (CLVTools' lambda.trans)."
    )
    l2_dropout: float = Field(
        0.0, ge=0, description="L2 penalty on the dropout coefficients (CLVTools' lambda.life)."
    )

    spend: list[str] = Field(
        default_factory=list,
        description="Attributes that scale spend per transaction (Gamma-Gamma's v × e^(δᵀz)).",
    )
    l2_spend: float = Field(0.0, ge=0, description="L2 penalty on the spend coefficients.")
    require_gain: bool = Field(
        True,
        description="A model with covariates competes for selection only when its holdout "
        "gain over the plain model is significant (paired z > 1.645: purchases by Poisson "
        "deviance, spend by the squared error of holdout revenue); false: a purchase model by "
        "the holdout criterion alone, like any candidate, and spend covariates always.",
    )

    @model_validator(mode="after")
    def _named(self) -> CovariatesConfig:
        names = {*self.purchase, *self.dropout, *self.spend}
        unknown = sorted({*self.categorical, *self.reference} - names)
        if unknown:
            raise ValueError(
                f"covariates.categorical/reference name {unknown}, which no process uses "
                f"(purchase, dropout, spend: {sorted(names)})"
            )
        return self

    @property
    def used(self) -> bool:
        """Whether any covariate is named."""
        return bool(self.purchase or self.dropout or self.spend)

    @property
    def on_purchase(self) -> bool:
        """Whether the purchase models take covariates."""
        return bool(self.purchase or self.dropout)

    @property
    def attributes(self) -> list[str]:
        """Every attribute named, in order."""
        return list(dict.fromkeys([*self.purchase, *self.dropout, *self.spend]))


class ChurnConfig(_Section):
    """The churn classifier: LightGBM's settings, its cross-validation, and how a blend with the
    BTYD score is chosen (DOMAIN.md; :mod:`clv.churn`). The horizon and the sample size are
    ``train.churn_horizon`` and ``train.churn_max_customers``."""

    learning_rate: float = Field(0.03, gt=0, le=1, description="LightGBM learning rate.")
    num_leaves: int = Field(15, ge=2, description="LightGBM leaves per tree.")
    min_data_in_leaf: int = Field(40, ge=1, description="LightGBM minimum customers per leaf.")
    feature_fraction: float = Field(0.8, gt=0, le=1, description="Features per tree.")
    bagging_fraction: float = Field(0.8, gt=0, le=1, description="Customers per tree.")
    lambda_l2: float = Field(1.0, ge=0, description="LightGBM L2 regularization.")
    folds: int = Field(
        5, ge=2, description="Stratified cross-validation folds (out-of-fold scores, rounds)."
    )
    max_rounds: int = Field(1000, ge=1, description="Most boosting rounds.")
    early_stopping: int = Field(
        50, ge=1, description="Stop when the cross-validated AUC has not improved for this many."
    )
    blend_weights: list[float] = Field(
        default_factory=lambda: [1.0, 0.75, 0.5, 0.25, 0.0],
        description="Weights of LightGBM in the blends tried with the BTYD score (0: the BTYD "
        "score alone, always a candidate).",
    )
    min_z: float = Field(
        ONE_SIDED_Z_5PCT,
        description="A blend (or a calibration) must beat the BTYD score by this DeLong z on the "
        "out-of-fold scores (1.645: one-sided 5 %).",
    )

    @field_validator("blend_weights")
    @classmethod
    def _weights(cls, value: list[float]) -> list[float]:
        if any(not 0.0 <= w <= 1.0 for w in value) or not any(w > 0 for w in value):
            raise ValueError("blend weights must lie in [0, 1], at least one above 0")
        return sorted({*value, 0.0}, reverse=True)


class ResourcesConfig(_Section):
    """What the run may use of the machine (:mod:`clv.resources`)."""

    threads: int | None = Field(
        None,
        ge=1,
        description="Threads for LightGBM, DuckDB and BLAS; null: the CPUs this process may use "
        "(its affinity and cgroup quota).",
    )
