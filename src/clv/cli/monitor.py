"""``clv monitor``: a shipped model's forecasts against the newer log, and whether to retrain."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from clv import resources
from clv.cli.console import console, deviance, fail, fmt, reading_bar, table, which_model
from clv.cli.options import (
    DATA_KEYS,
    RESOURCE_KEYS,
    AmountColOpt,
    ConfigOpt,
    CustomerColOpt,
    DateColOpt,
    DateFormatOpt,
    DelimiterOpt,
    QueryOpt,
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
KEYS = DATA_KEYS | RESOURCE_KEYS | {"model": "score.model", "tracking_uri": "mlflow.tracking_uri"}


def monitor(
    config: ConfigOpt = None,
    threads: ThreadsOpt = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help=f"Bundle folder or models:/NAME@champion {default('score.model')}.",
        ),
    ] = None,
    transactions: TransactionsOpt = None,
    customer_col: CustomerColOpt = None,
    date_col: DateColOpt = None,
    amount_col: AmountColOpt = None,
    date_format: DateFormatOpt = None,
    timezone: TimezoneOpt = None,
    delimiter: DelimiterOpt = None,
    table: TableOpt = None,
    query: QueryOpt = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder.")] = Path(
        "reports/monitor"
    ),
    fail_on_retrain: Annotated[
        bool,
        typer.Option("--fail-on-retrain", help="Exit with code 3 when the rule says retrain."),
    ] = False,
    mlflow: Annotated[
        bool,
        typer.Option("--mlflow/--no-mlflow", help="Log the result as an MLflow run [default: on]."),
    ] = True,
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """Check a shipped model's forecasts (as of its training end) against a newer log.

    Purchases, churn and value in the window the newer log adds, by value segment and month,
    plus feature drift; writes JSON, CSV and an HTML page, and says whether to retrain.
    """
    changes = overrides(locals(), KEYS)
    try:
        settings = load_settings(config, changes)
        from clv.monitor import MONITOR_FILES

        outputs = [out / name for name in MONITOR_FILES]
        check_outputs(settings, config, outputs, "--out", *model_files(settings.score.model))
        with resources.limits(settings.resources.threads):
            from clv.data.clean import load_transactions
            from clv.monitor import monitor as run_monitor
            from clv.monitor import write_monitoring
            from clv.predict import load_model, model_attributes

            bundle = load_model(settings.score.model, settings.mlflow.tracking_uri)
            console.print(which_model(settings.score.model, bundle, model is None), highlight=False)
            with reading_bar() as reading:
                log = load_transactions(settings.data.transactions, settings.data, progress=reading)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                result = run_monitor(bundle, log, model_attributes(bundle, settings))
            paths = write_monitoring(result, out)
            run_id = None
            if mlflow:
                from clv.tracking import log_monitoring

                run_id = log_monitoring(result, paths, settings)
    except ClvError as exc:
        raise fail(exc) from None
    print_monitoring(result.summary)
    console.print(f"Report: [bold]{paths[0]}[/] (+ JSON, CSV)", highlight=False)
    if run_id:
        console.print(f"Logged to MLflow run {run_id}", highlight=False)
    if fail_on_retrain and result.summary["retrain"]:
        raise typer.Exit(code=3)


def print_monitoring(s: dict[str, Any]) -> None:
    """The monitor's summary: the window, purchases, churn, value, drift and the advice."""
    p = s["purchases"]
    rows = [
        ["window", f"{s['window']['from']} .. {s['window']['to']}"],
        ["customers forecast", f"{s['customers_forecast']:,}"],
        ["purchases predicted / actual", f"{p['predicted_total']:,.0f} / {p['actual_total']:,.0f}"],
        ["aggregate error", fmt(p["aggregate_error_pct"], pct=True)],
        ["MAE / RMSE / deviance", f"{p['mae']:.4f} / {p['rmse']:.4f} / {deviance(p)}"],
    ]
    if "churn" in s:
        c = s["churn"]
        rows.append(
            [
                "churn ROC AUC (at training)",
                f"{c['roc_auc']:.4f} ({c['roc_auc_at_training'] or float('nan'):.4f})",
            ]
        )
        rows.append(["churn Brier / ECE", f"{c['brier']:.4f} / {c['ece']:.4f}"])
    if "value" in s:
        v = s["value"]
        rows.append(
            [
                "top-decile capture / Gini",
                f"{v['top_decile_capture']:.3f} / {v['normalized_gini']:.3f}",
            ]
        )
    worst = max(s["drift"], key=s["drift"].get)
    rows.append(["largest drift (PSI)", f"{worst} {s['drift'][worst]:.3f}"])
    rows.append(["retrain", "yes: " + "; ".join(s["reasons"]) if s["retrain"] else "no"])
    console.print(table("Monitoring", ["", "value"], rows))
