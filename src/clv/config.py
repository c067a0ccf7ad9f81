"""Typed settings, read from YAML (``configs/default.yaml``) and overridden from the CLI.

Every CLI option has a key here, so any run can be written down as a config file and repeated:
``clv train --config configs/my_run.yaml``. Options given on the command line win over the file,
and the file wins over the defaults below. Unknown keys are an error (a typo must not be
ignored silently).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from clv.errors import DataValidationError
from clv.units import TimeUnit

#: Level of the predictive intervals and ranges when none is configured.
DEFAULT_INTERVAL = 0.8

#: Value tiers from the top by predicted CLV: top 10 %, next 20 %, then the rest
#: (:mod:`clv.segments`).
DEFAULT_SEGMENTS: dict[str, float] = {"top": 0.10, "high": 0.20}

#: z above which a paired difference counts, one-sided at 5 % (promotion, churn blends).
ONE_SIDED_Z_5PCT = 1.645

#: Names of the transaction logs that ship inside ``lifetimes`` (see :mod:`clv.data`).
EMBEDDED_DATASETS = ("cdnow", "cdnow-sample")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """Where the transaction log is and how to read and clean it."""

    transactions: str = Field(
        "cdnow",
        description="CSV or Parquet log, an embedded data set: 'cdnow' (23,570 customers) "
        "or 'cdnow-sample' (2,357 customers), or a PostgreSQL URI "
        "(postgresql://user@host:port/db, password in PGPASSWORD or ~/.pgpass) with table or "
        "query.",
    )
    table: str | None = Field(
        None, description="Table or view ('schema.table') of a PostgreSQL log."
    )
    query: str | None = Field(None, description="SELECT that returns a PostgreSQL log.")
    customer_col: str = Field(
        "customer_id", description="Column with the customer id (read as text)."
    )
    date_col: str = Field(
        "date", description="Column with the purchase date or timestamp (see timezone)."
    )
    amount_col: str | None = Field(
        "amount", description="Column with the purchase amount; null fits purchase models only."
    )
    date_format: str | None = Field(
        None, description="strftime format of the date column (e.g. %Y%m%d); null to infer."
    )
    timezone: str = Field(
        "UTC",
        description="Zone in which calendar days are counted: timezone-aware timestamps are "
        "converted to it; naive timestamps are taken to be in it already.",
    )
    negative_amounts: Literal["exclude", "error"] = Field(
        "exclude",
        description="Rows with a negative amount are returns, not purchases: 'exclude' keeps them "
        "out of the purchase log and reports how many (and their total); 'error' stops.",
    )
    surveys: str | None = Field(
        None,
        description="Survey table: customer_id, date, nps (0-10) and/or SERVQUAL columns "
        "expectation_<dimension>[_<item>] / perception_<dimension>[_<item>].",
    )
    zero_amounts: Literal["keep", "exclude"] = Field(
        "keep",
        description="Rows with amount 0 are purchase occasions ('keep', reported) or not "
        "('exclude', reported). Gamma-Gamma only ever sees customers with positive mean spend.",
    )
    implausible: Literal["exclude", "error"] = Field(
        "exclude",
        description="Rows with an implausible date or amount (see date_window_years, "
        "max_amount_ratio) are excluded and reported with examples ('exclude'), or stop the run "
        "('error').",
    )
    date_window_years: float | None = Field(
        10.0,
        gt=0,
        description="A date more than this many years before or after the bulk of the log (its "
        "1st to 99th percentile of dates) is implausible, as is one no timestamp can hold "
        "(before 1677 or after 2262); null checks only the latter.",
    )
    max_amount_ratio: float | None = Field(
        1e6,
        gt=1,
        description="An amount more than this many times the median positive amount is "
        "implausible, as is a non-finite one or one above 1e15 in absolute value; null checks "
        "only the latter.",
    )
    delimiter: str | None = Field(
        None,
        min_length=1,
        max_length=1,
        description="Field delimiter of a text log (',', ';', tab, '|'); null detects it.",
    )
    survey_customer_col: str | None = Field(
        None, description="Customer id column of the survey table; null: data.customer_col."
    )
    survey_date_col: str = Field("date", description="Date column of the survey table.")
    survey_nps_col: str = Field("nps", description="NPS answer (0-10) column of the survey table.")
    engine: Literal["local", "spark"] = Field(
        "local",
        description="Where the log is read and cleaned: 'local' (pandas and DuckDB on this "
        "machine) or 'spark' (any Spark source — a Parquet/ORC/CSV path, a Delta folder or a "
        "table name — cleaned on the cluster with the same rules; clv.data.spark_log).",
    )
    spark_master: str = Field("local[2]", description="Spark master URL for engine spark.")


class FeaturesConfig(_Section):
    """How RFM is built."""

    time_unit: TimeUnit = Field(
        "week", description="Unit of recency, T, holdout and horizons (day, week, month)."
    )


class TrainConfig(_Section):
    """Model selection on a calibration/holdout split, then a refit on the whole log."""

    candidates: list[str] = Field(
        default_factory=lambda: ["bgnbd", "mbgnbd", "pareto", "ensemble", "stacked"],
        description="Purchase models to compare on the holdout: bgnbd, mbgnbd, pareto, ggomnbd "
        "(Gamma-Gompertz/NBD), mbgcnbd (MBG/CNBD-k, regular buyers), 'ensemble', the "
        "equal-weight mixture of BG/NBD, MBG/NBD and Pareto/NBD, and 'stacked', the mixture of "
        "every other model listed with weights that maximise the holdout log score.",
    )
    regularity_model: bool = Field(
        False,
        description="Add mbgcnbd (MBG/CNBD-k) to the candidates when purchase timing is "
        "regular (Wheat-Morrison k >= 1.5 on the calibration period). Off by default: on the "
        "real regular log here (grocery) it made hidden-split forecasts 1-4 % worse at 4 of 6 "
        "cutoffs (benchmarks/peers.py --cutoffs), while on simulated Erlang buyers it wins.",
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


class ScoreConfig(_Section):
    """Forward-looking scores for a customer list."""

    model: str = Field("models/cdnow", description="Bundle directory to score with.")
    horizon: float = Field(52.0, gt=0, description="Horizon, in the scoring time unit.")
    time_unit: TimeUnit | None = Field(
        None, description="Unit of horizon and discount rate; null means the bundle's unit."
    )
    discount_rate: float = Field(
        0.0, ge=0, description="Discount rate per time unit (e.g. 0.0019 per week ≈ 10 %/year)."
    )
    margin: float = Field(1.0, gt=0, description="Profit margin applied to expected spend.")
    interval: float = Field(
        DEFAULT_INTERVAL,
        ge=0,
        lt=1,
        description="Level of the predictive intervals (expected_purchases_low/high, "
        "clv_low/high) and of the totals' ranges; 0 turns them off.",
    )
    as_of: dt.date | None = Field(
        None, description="Score as of this day (default: the log's last day); later rows ignored."
    )
    customers: str | None = Field(None, description="CSV/Parquet list of customer ids to score.")
    out: str = Field(
        "scores/cdnow.csv",
        description="Output file (.csv or .parquet; a Parquet folder for engine spark), or a "
        "PostgreSQL URI with out_table.",
    )
    out_table: str | None = Field(
        None, description="Table ('schema.table') the scores go to when out is a PostgreSQL URI."
    )
    if_exists: Literal["replace", "append", "fail"] = Field(
        "replace",
        description="When out_table exists: swap in the new scores, append them (rows carry "
        "as_of and model_version), or stop.",
    )
    segments: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_SEGMENTS),
        description="Value tiers from the top by predicted CLV (expected purchases without "
        "amounts): name → share of customers; the remainder is 'segment_rest'.",
    )
    segment_rest: str = Field(
        "rest", description="Name of the value segment of the customers below the named tiers."
    )
    engine: Literal["local", "spark"] = Field(
        "local", description="local (pandas) or spark (mlflow.pyfunc.spark_udf; Parquet folder)."
    )
    spark_master: str = Field("local[2]", description="Spark master URL for engine spark.")

    @field_validator("segments")
    @classmethod
    def _shares(cls, value: dict[str, float]) -> dict[str, float]:
        if any(share <= 0 for share in value.values()) or sum(value.values()) > 1.0 + 1e-9:
            raise ValueError("segment shares must be positive and sum to at most 1")
        return value


SERVQUAL_DIMENSIONS = ("tangibles", "reliability", "responsiveness", "assurance", "empathy")


class KpiConfig(_Section):
    """Business metrics of ``clv kpis`` (DOMAIN.md §4)."""

    in_train: bool = Field(True, description="Compute the KPI report inside `clv train` too.")
    costs: str | None = Field(
        None,
        description="Acquisition costs: customer_id + acquisition_cost, or channel + "
        "acquisition_cost (with a channel column in kpis.customers).",
    )
    customers: str | None = Field(None, description="Customer table with a channel column.")
    costs_customer_col: str | None = Field(
        None, description="Customer id column of the cost table; null: data.customer_col."
    )
    costs_channel_col: str = Field("channel", description="Channel column of the cost table.")
    costs_amount_col: str = Field(
        "acquisition_cost", description="Acquisition cost column of the cost table."
    )
    inactivity_days: int = Field(
        365, gt=0, description="A customer is lost after this many days without a purchase."
    )
    period_months: int = Field(12, gt=0, description="Length of the reporting period.")
    expected_lifetime_years: float | None = Field(
        None, gt=0, description="Customer lifetime for simple CLV; null: 1 / annual churn rate."
    )
    forecast_months: int = Field(12, gt=0, description="Months of revenue forecast.")
    servqual_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "tangibles": 11.0,
            "reliability": 32.0,
            "responsiveness": 22.0,
            "assurance": 19.0,
            "empathy": 16.0,
        },
        description="Importance of each SERVQUAL dimension, out of 100 points.",
    )
    out: Path = Field(Path("reports/kpis"), description="Folder of the report.")

    @field_validator("servqual_weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = set(value) - set(SERVQUAL_DIMENSIONS)
        if unknown:
            raise ValueError(f"unknown SERVQUAL dimensions {sorted(unknown)}")
        if abs(sum(value.values()) - 100.0) > 1e-6:
            raise ValueError(f"SERVQUAL weights must sum to 100, not {sum(value.values()):g}")
        return value


class MlflowConfig(_Section):
    """Experiment tracking and the model registry."""

    enabled: bool = Field(True, description="Log every `clv train` as an MLflow run.")
    tracking_uri: str | None = Field(
        None,
        description="Tracking URI; null means $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db "
        "in the working directory.",
    )
    experiment: str = Field("clv", description="MLflow experiment the training runs go to.")
    registered_model: str | None = Field(
        None,
        description="Registry name of the trained models; null derives it from the data "
        "source: clv-<file stem> (clv-cdnow for the embedded log).",
    )
    champion_metric: str = Field(
        "purchases.chosen.poisson_deviance",
        description="Metric that decides champion vs challenger: purchases.chosen."
        "poisson_deviance, .rmse or .mae (per-customer losses, paired test) or "
        "churn.churn_model.roc_auc (DeLong), the champion refitted on the challenger's split, "
        "at one-sided 5 %; any other scorecard metric registers without promotion (use clv "
        "promote).",
    )


class Config(_Section):
    """All settings of a clv run."""

    data: DataConfig = Field(default_factory=DataConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    churn: ChurnConfig = Field(default_factory=ChurnConfig)
    covariates: CovariatesConfig = Field(default_factory=CovariatesConfig)
    score: ScoreConfig = Field(default_factory=ScoreConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    kpis: KpiConfig = Field(default_factory=KpiConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)

    @field_validator("train")
    @classmethod
    def _some_candidate(cls, value: TrainConfig) -> TrainConfig:
        if not value.candidates:
            raise ValueError("train.candidates must name at least one purchase model")
        return value

    def with_overrides(self, overrides: dict[str, Any]) -> Config:
        """Return a copy with dotted keys (``"data.customer_col"``) replaced; ``None`` is skipped.

        Parameters
        ----------
        overrides : dict
            Dotted keys to values, typically the options given on the command line.

        Returns
        -------
        Config
            A validated copy.

        Raises
        ------
        DataValidationError
            If a key is unknown or a value is invalid.
        """
        tree = self.model_dump()
        for key, value in overrides.items():
            if value is None:
                continue
            section, _, name = key.partition(".")
            if section not in tree or name not in tree[section]:
                raise DataValidationError(f"Unknown config key {key!r}.")
            tree[section][name] = value
        return _validate(tree, source="command-line options")

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as plain JSON-compatible values."""
        return self.model_dump(mode="json")


def _validate(tree: dict[str, Any], source: str) -> Config:
    try:
        return Config.model_validate(tree)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise DataValidationError(f"Invalid settings in {source}: {problems}.") from None


def load_config(path: str | Path | None = None) -> Config:
    """Read settings from a YAML file, or return the defaults when ``path`` is None.

    Parameters
    ----------
    path : str or Path, optional
        A YAML file with any of the sections ``data``, ``features``, ``train``, ``score``.

    Returns
    -------
    Config

    Raises
    ------
    DataValidationError
        If the file is missing, is not a YAML mapping, or holds unknown keys or invalid values.
    """
    if path is None:
        return Config()
    path = Path(path)
    if not path.is_file():
        raise DataValidationError(f"Config file {path} does not exist.")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise DataValidationError(f"Config file {path} is not valid YAML: {exc}") from None
    if not isinstance(tree, dict):
        raise DataValidationError(f"Config file {path} must hold a mapping of sections.")
    return _validate(tree, source=str(path))
