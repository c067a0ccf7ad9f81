"""Settings of the log: where it is, its columns, and how it is read and cleaned; the time unit."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from clv.config.base import _Section
from clv.units import TimeUnit


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
