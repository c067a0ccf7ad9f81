"""The KPI report of a run, with the cost and customer tables the config names."""

from __future__ import annotations

import pandas as pd

from clv.bundle import Bundle
from clv.config import Config
from clv.data.customers import read_customer_list
from clv.data.log import TransactionLog
from clv.evaluation import (
    observation_end,
)
from clv.kpis import KpiReport
from clv.predict import model_attributes
from clv.stages import StageLog


def build_kpis(
    log: TransactionLog,
    config: Config,
    bundle: Bundle | None,
    surveys: pd.DataFrame | None,
    rfm: pd.DataFrame | None = None,
) -> KpiReport:
    """The KPI report (:mod:`clv.kpis`) with the cost and customer tables the config names
    (``rfm``: the log's RFM table as of :func:`observation_end`, when the caller has it)."""
    from clv.data.customers import load_costs
    from clv.kpis import build_report

    settings = config.kpis
    col = config.data.customer_col
    costs = load_costs(settings.costs, col, settings) if settings.costs else None
    customers = read_customer_list(settings.customers, col) if settings.customers else None
    attributes = model_attributes(bundle, config) if bundle is not None else None
    return build_report(
        log,
        config,
        observation_end(log, config),
        bundle,
        surveys,
        costs,
        customers,
        attributes,
        rfm,
    )


def kpi_stage(
    log: TransactionLog,
    config: Config,
    forecasting: Bundle,
    surveys: pd.DataFrame | None,
    rfm: pd.DataFrame,
    stages: StageLog,
) -> KpiReport | None:
    """The run's KPI report (the optional stage ``kpis``), logged with the run: only with MLflow,
    ``kpis.in_train`` and amounts."""
    if not (config.mlflow.enabled and config.kpis.in_train and log.has_amounts):
        return None
    kpis = stages.optional(
        "kpis",
        lambda: build_kpis(log, config, forecasting, surveys, rfm),  # the refit's RFM
        "the run logs no KPI report",
    )
    if kpis is not None:
        stages("Built the KPI report")
    return kpis
