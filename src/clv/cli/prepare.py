"""``clv prepare``: the cleaned log, RFM and calibration/holdout tables as Parquet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from clv import resources
from clv.cli.console import console, fail, print_cleaning
from clv.cli.options import (
    DATA_KEYS,
    ENGINE_KEYS,
    RESOURCE_KEYS,
    SPLIT_KEYS,
    AmountColOpt,
    AsOfOpt,
    CalibrationEndOpt,
    ConfigOpt,
    CustomerColOpt,
    DateColOpt,
    DateFormatOpt,
    DelimiterOpt,
    EngineOpt,
    HoldoutOpt,
    NoAmountsOpt,
    QueryOpt,
    SparkMasterOpt,
    TableOpt,
    ThreadsOpt,
    TimeUnitOpt,
    TimezoneOpt,
    TransactionsOpt,
    check_outputs,
    load_settings,
    overrides,
)
from clv.errors import ClvError

#: Options → config keys (defaults ← ``--config`` file ← these).
KEYS = DATA_KEYS | ENGINE_KEYS | SPLIT_KEYS | RESOURCE_KEYS


def prepare(
    config: ConfigOpt = None,
    threads: ThreadsOpt = None,
    transactions: TransactionsOpt = None,
    customer_col: CustomerColOpt = None,
    date_col: DateColOpt = None,
    amount_col: AmountColOpt = None,
    no_amounts: NoAmountsOpt = False,
    date_format: DateFormatOpt = None,
    timezone: TimezoneOpt = None,
    delimiter: DelimiterOpt = None,
    table: TableOpt = None,
    engine: EngineOpt = None,
    spark_master: SparkMasterOpt = None,
    query: QueryOpt = None,
    as_of: AsOfOpt = None,
    time_unit: TimeUnitOpt = None,
    holdout: HoldoutOpt = None,
    calibration_end: CalibrationEndOpt = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path(
        "data/prepared"
    ),
) -> None:
    """Clean the log and write it with RFM and calibration/holdout tables as Parquet."""
    changes = overrides(locals(), KEYS)
    try:
        settings = load_settings(config, changes, no_amounts)
        with resources.limits(settings.resources.threads):
            from clv.prepare import PREPARE_FILES
            from clv.prepare import prepare as run_prepare

            outputs = [out / name for name in PREPARE_FILES.values()]
            check_outputs(settings, config, outputs, "--out")
            paths = run_prepare(settings, out)
    except ClvError as exc:
        raise fail(exc) from None
    report = json.loads(paths["report"].read_text())
    print_cleaning(report["cleaning"])
    for name, path in paths.items():
        console.print(f"{name}: [bold]{path}[/]", highlight=False)
