"""Settings of what a run produces: scores, the KPI report and MLflow."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from clv.config.base import DEFAULT_INTERVAL, DEFAULT_SEGMENTS, SERVQUAL_DIMENSIONS, _Section
from clv.units import TimeUnit


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
