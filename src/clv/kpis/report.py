"""The report assembled: every KPI table and the summary, as one :class:`KpiReport`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from clv.config import DEFAULT_INTERVAL
from clv.data.compact import CUSTOMER, DAY, day_number
from clv.data.customers import SERVQUAL_COLUMN
from clv.data.log import TransactionLog
from clv.errors import DataValidationError
from clv.features import build_rfm
from clv.kpis.forecast import model_forecast, value_segments_table
from clv.kpis.tables import (
    acquisition_costs,
    monthly_table,
    nps_table,
    period_summary,
    servqual,
    simple_clv,
)


@dataclass
class KpiReport:
    """Every number of the report, as tables and a JSON-ready summary."""

    summary: dict[str, Any]
    monthly: pd.DataFrame
    segments: pd.DataFrame
    forecast: pd.DataFrame | None = None
    nps_monthly: pd.DataFrame | None = None
    servqual: pd.DataFrame | None = None
    channels: pd.DataFrame | None = None
    definitions: dict[str, str] = field(default_factory=dict)


def build_report(
    log: TransactionLog,
    config: Any,
    as_of: pd.Timestamp | None = None,
    bundle: Any | None = None,
    surveys: pd.DataFrame | None = None,
    costs: pd.DataFrame | None = None,
    customers: pd.DataFrame | None = None,
    attributes: pd.DataFrame | None = None,
    rfm: pd.DataFrame | None = None,
) -> KpiReport:
    """Compute every KPI of the module docstring.

    Parameters
    ----------
    log : TransactionLog
        The cleaned log (needs amounts for revenue, CLV and the forecast).
    config : Config
        ``kpis`` settings and ``score.segments``.
    as_of : pandas.Timestamp, optional
        End of the reporting period (default: the log's last day).
    bundle : Bundle, optional
        A model bundle: segments by its 12-month CLV and the revenue forecast.
    surveys, costs, customers : pandas.DataFrame, optional
        Survey table (:func:`read_surveys`), acquisition costs, customer table with channels.
    attributes : pandas.DataFrame, optional
        Customer attributes, for a model with covariates (:mod:`clv.models.covariates`).
    rfm : pandas.DataFrame, optional
        The log's RFM table as of ``as_of`` in the bundle's time unit
        (:func:`clv.features.build_rfm`), when the caller has it (built here otherwise).

    Returns
    -------
    KpiReport
    """
    if not log.has_amounts:
        raise DataValidationError("The KPI report needs amounts (revenue); the log has none.")
    settings = config.kpis
    as_of = pd.Timestamp(as_of or log.report.last_date).normalize()
    monthly = monthly_table(log, as_of, settings.inactivity_days)
    period = period_summary(log, monthly, as_of, settings.period_months)
    clv_block, channels = _simple_clv(log, period, settings, as_of, costs, customers)
    predicted = None
    forecast = None
    if bundle is not None and bundle.spend is not None:
        if rfm is None:
            rfm = build_rfm(log.compact, as_of, bundle.time_unit)
        if attributes is not None:  # a model with covariates reads them
            rfm = rfm.merge(attributes, on=CUSTOMER, how="left", validate="one_to_one")
        forecast, predicted = model_forecast(
            bundle,
            rfm,
            as_of,
            settings.forecast_months,
            level=config.score.interval or DEFAULT_INTERVAL,
        )
    segments = value_segments_table(
        log,
        as_of,
        settings.period_months,
        config.score.segments,
        config.score.segment_rest,
        predicted,
    )
    summary: dict[str, Any] = {
        "as_of": str(as_of.date()),
        "lost_definition": f"no purchase for {settings.inactivity_days} days",
        "period": period,
        "simple_clv": clv_block,
        "segments_by": "model CLV over 12 months"
        if predicted is not None
        else "revenue in the period",
    }
    nps_monthly = servqual_table = None
    if surveys is not None:
        if "nps" in surveys:
            nps_monthly, summary["nps"] = nps_table(surveys, as_of, settings.period_months)
        if any(SERVQUAL_COLUMN.match(c) for c in surveys.columns):
            servqual_table, weighted = servqual(
                surveys[surveys["date"] <= as_of], settings.servqual_weights
            )
            summary["servqual"] = {"weighted_gap": weighted, "weights": settings.servqual_weights}
    if forecast is not None:
        summary["forecast"] = {
            "months": settings.forecast_months,
            "expected_revenue": float(forecast["expected_revenue"].sum()),
            "low": float(forecast["cumulative_low"].iloc[-1]),
            "high": float(forecast["cumulative_high"].iloc[-1]),
            "level": config.score.interval or DEFAULT_INTERVAL,
            "scope": "existing customers only (no new acquisitions)",
        }
    return KpiReport(summary, monthly, segments, forecast, nps_monthly, servqual_table, channels)


def _simple_clv(
    log: TransactionLog,
    period: dict[str, Any],
    settings: Any,
    as_of: pd.Timestamp,
    costs: pd.DataFrame | None,
    customers: pd.DataFrame | None,
) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """The simple CLV of the period (annual revenue per customer × expected lifetime − the
    acquisition cost), with CLV : CAC and ROI when there is a cost table, and per channel when
    the costs are by channel."""
    lifetime_given = settings.expected_lifetime_years is not None
    annual_churn = period["churn_rate"] * 12 / period["months"]
    lifetime = (
        settings.expected_lifetime_years
        if lifetime_given
        else (1.0 / annual_churn if annual_churn > 0 else float("nan"))
    )
    annual = period["annual_revenue_per_customer"]
    clv_block: dict[str, Any] = {
        "annual_revenue_per_customer": annual,
        "expected_lifetime_years": lifetime,
        "lifetime_source": "given" if lifetime_given else "1 / annual churn rate",
        "gross_value": annual * lifetime,
    }
    channels = None
    if costs is not None:
        view = log.compact
        acquired = pd.Index(
            view.per_customer(
                f"SELECT DISTINCT {CUSTOMER} FROM tx WHERE {DAY} <= $end",
                {"end": day_number(as_of)},
            )[CUSTOMER]
        )
        cac, channels = acquisition_costs(costs, customers, acquired)
        clv_block |= {
            "acquisition_cost": cac,
            "simple_clv": simple_clv(annual, lifetime, cac),
            "clv_to_cac": annual * lifetime / cac if cac else float("nan"),
            "roi_per_customer": simple_clv(annual, lifetime, cac) / cac if cac else float("nan"),
        }
        if channels is not None:
            channels["simple_clv"] = annual * lifetime - channels["acquisition_cost"]
            cost = channels["acquisition_cost"].where(channels["acquisition_cost"] > 0)
            channels["clv_to_cac"] = annual * lifetime / cost  # NaN (empty in CSV) at cost 0
            channels["roi_per_customer"] = channels["simple_clv"] / cost
    else:
        clv_block["simple_clv"] = simple_clv(annual, lifetime, 0.0)
        clv_block["note"] = "no cost table: simple CLV without acquisition cost"
    return clv_block, channels
