"""``clv kpis``: the business KPI report (churn, retention, simple CLV, NPS, SERVQUAL, …)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from clv import resources
from clv.cli.console import console, fail, table
from clv.cli.options import (
    DATA_KEYS,
    RESOURCE_KEYS,
    AmountColOpt,
    AsOfOpt,
    ConfigOpt,
    CostColOpt,
    CustomerColOpt,
    DateColOpt,
    DateFormatOpt,
    DelimiterOpt,
    QueryOpt,
    SurveyColOpt,
    SurveysOpt,
    TableOpt,
    ThreadsOpt,
    TimezoneOpt,
    TrackingUriOpt,
    TransactionsOpt,
    check_outputs,
    default,
    load_settings,
    model_files,
    overrides,
)
from clv.errors import ClvError

#: Options → config keys (defaults ← ``--config`` file ← these).
KEYS = (
    DATA_KEYS
    | RESOURCE_KEYS
    | {
        "as_of": "train.as_of",
        "costs": "kpis.costs",
        "customers": "kpis.customers",
        "inactivity_days": "kpis.inactivity_days",
        "expected_lifetime": "kpis.expected_lifetime_years",
        "forecast_months": "kpis.forecast_months",
        "out": "kpis.out",
        "tracking_uri": "mlflow.tracking_uri",
    }
)


def kpis(
    config: ConfigOpt = None,
    threads: ThreadsOpt = None,
    transactions: TransactionsOpt = None,
    customer_col: CustomerColOpt = None,
    date_col: DateColOpt = None,
    amount_col: AmountColOpt = None,
    date_format: DateFormatOpt = None,
    timezone: TimezoneOpt = None,
    surveys: SurveysOpt = None,
    survey_col: SurveyColOpt = None,
    delimiter: DelimiterOpt = None,
    table: TableOpt = None,
    query: QueryOpt = None,
    costs: Annotated[
        str | None,
        typer.Option(
            help="Acquisition costs: customer_id or channel, and acquisition_cost "
            f"{default('kpis.costs', 'none')}."
        ),
    ] = None,
    cost_col: CostColOpt = None,
    customers: Annotated[
        str | None,
        typer.Option(
            help="Customer table with a channel column (per-channel costs) "
            f"{default('kpis.customers', 'none')}."
        ),
    ] = None,
    as_of: AsOfOpt = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Bundle (or models:/…): CLV segments and a forecast."),
    ] = None,
    inactivity_days: Annotated[
        int | None,
        typer.Option(
            help="Days without a purchase after which a customer is lost "
            f"{default('kpis.inactivity_days')}."
        ),
    ] = None,
    expected_lifetime: Annotated[
        float | None,
        typer.Option(
            help="Expected lifetime in years "
            f"{default('kpis.expected_lifetime_years', '1 / annual churn rate')}."
        ),
    ] = None,
    forecast_months: Annotated[
        int | None, typer.Option(help=f"Months of forecast {default('kpis.forecast_months')}.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help=f"Report folder {default('kpis.out')}.")
    ] = None,
    log_to_mlflow: Annotated[
        bool, typer.Option("--log-to-mlflow", help="Log the report as artifacts of an MLflow run.")
    ] = False,
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """Business KPIs: churn, retention, acquisition and repeat rates, simple CLV, NPS, SERVQUAL,
    value segments and a revenue forecast, as an offline HTML report plus JSON and CSV."""
    changes = overrides(locals(), KEYS)
    try:
        settings = load_settings(config, changes)
        from clv.report import REPORT_FILES

        out = settings.kpis.out
        outputs = [out / name for name in REPORT_FILES]
        check_outputs(settings, config, outputs, "--out", *model_files(model))
        with resources.limits(settings.resources.threads):
            from clv.data.clean import load_configured_log
            from clv.data.customers import load_surveys
            from clv.predict import load_model
            from clv.report import write_report
            from clv.training import build_kpis

            log = load_configured_log(settings)
            bundle = load_model(model, settings.mlflow.tracking_uri) if model else None
            report = build_kpis(
                log, settings, bundle, load_surveys(settings.data.surveys, settings.data)
            )
            paths = write_report(report, settings.kpis.out)
            run_id = None
            if log_to_mlflow:
                from clv.tracking import log_kpi_report

                run_id = log_kpi_report(report, settings)
    except ClvError as exc:
        raise fail(exc) from None
    print_kpis(report.summary)
    console.print(
        f"Report: [bold]{paths[0]}[/] (+ {', '.join(p.name for p in paths[1:])})", highlight=False
    )
    if run_id:
        console.print(f"Logged to MLflow run {run_id} (artifacts kpis/)", highlight=False)


def print_kpis(summary: dict[str, Any]) -> None:
    """The KPI summary as one table; a KPI without a value says why (:func:`clv.kpis.figure`)."""
    from clv.kpis import figure

    p, c = summary["period"], summary["simple_clv"]
    rows = [
        ["period", f"{p['from']} .. {p['to']} ({p['months']} months)"],
        ["lost", summary["lost_definition"]],
        [
            "churn rate",
            f"{figure(p['churn_rate'], '.1%', 'churn_rate')} ({p['customers_lost']:,} lost / "
            f"{p['average_active_customers']:,.0f} avg. active)",
        ],
        ["retention rate", figure(p["retention_rate"], ".1%", "retention_rate")],
        ["new customers per month", f"{p['acquisition_rate_per_month']:,.1f}"],
        ["repeat-purchase rate", figure(p["repeat_purchase_rate"], ".1%", "repeat_purchase_rate")],
        [
            "annual revenue per customer",
            figure(p["annual_revenue_per_customer"], ",.2f", "annual_revenue_per_customer"),
        ],
        [
            "expected lifetime (years)",
            f"{figure(c['expected_lifetime_years'], '.2f', 'expected_lifetime_years')} "
            f"({c['lifetime_source']})",
        ],
        ["simple CLV", figure(c["simple_clv"], ",.2f", "simple_clv")],
    ]
    if "acquisition_cost" in c:
        rows += [
            ["acquisition cost (CAC)", f"{c['acquisition_cost']:,.2f}"],
            ["CLV : CAC", figure(c["clv_to_cac"], ".2f", "clv_to_cac")],
            ["ROI per customer", figure(c["roi_per_customer"], ".2f", "roi_per_customer")],
        ]
    if "nps" in summary:
        n = summary["nps"]
        rows.append(["NPS", nps_line(n)])
    if "servqual" in summary:
        rows.append(["SERVQUAL weighted gap", f"{summary['servqual']['weighted_gap']:+.3f}"])
    if "forecast" in summary:
        f = summary["forecast"]
        rows.append(
            [
                f"revenue forecast, {f['months']} months",
                f"{f['expected_revenue']:,.0f} ({f['level']:.0%} range {f['low']:,.0f} – "
                f"{f['high']:,.0f}; {f['scope']})",
            ]
        )
    console.print(table(f"KPIs as of {summary['as_of']}", ["", "value"], rows))


def nps_line(n: dict[str, Any]) -> str:
    """The NPS over the report period, or why there is none (no answer falls in the period)."""
    if n["nps"] is not None:
        return f"{n['nps']:+.1f} ({n['responses']:,} answers)"
    start, end = n.get("period") or ("?", "?")
    dates = n.get("survey_dates")
    seen = f"the survey's answers run from {dates[0]} to {dates[1]}" if dates else "it has none"
    return f"none: no survey answers fall in {start} .. {end} ({seen})"
