"""``clv evaluate``: score every model and baseline on a holdout; write the scorecard."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer

from clv import resources
from clv.cli.console import (
    clv_notices,
    console,
    fail,
    print_cleaning,
    print_notices,
    print_scorecard,
    reading_bar,
)
from clv.cli.options import (
    DATA_KEYS,
    ENGINE_KEYS,
    RESOURCE_KEYS,
    SPLIT_KEYS,
    AmountColOpt,
    AsOfOpt,
    AttributesOpt,
    CalibrationEndOpt,
    ChurnHorizonOpt,
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
    SurveyColOpt,
    SurveysOpt,
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


def evaluate(
    config: ConfigOpt = None,
    threads: ThreadsOpt = None,
    transactions: TransactionsOpt = None,
    customer_col: CustomerColOpt = None,
    date_col: DateColOpt = None,
    amount_col: AmountColOpt = None,
    no_amounts: NoAmountsOpt = False,
    date_format: DateFormatOpt = None,
    timezone: TimezoneOpt = None,
    surveys: SurveysOpt = None,
    survey_col: SurveyColOpt = None,
    delimiter: DelimiterOpt = None,
    table: TableOpt = None,
    engine: EngineOpt = None,
    spark_master: SparkMasterOpt = None,
    query: QueryOpt = None,
    as_of: AsOfOpt = None,
    time_unit: TimeUnitOpt = None,
    holdout: HoldoutOpt = None,
    calibration_end: CalibrationEndOpt = None,
    churn_horizon: ChurnHorizonOpt = None,
    customers: AttributesOpt = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Scorecard JSON.")] = Path(
        "scorecard.json"
    ),
    plots: Annotated[
        Path | None, typer.Option(help="Folder for the diagnostic plots (PNG).")
    ] = None,
) -> None:
    """Score every model and baseline on a holdout and write the scorecard (no bundle).

    Purchases (MAE, RMSE, Spearman, aggregate error), value (Spearman, normalized Gini,
    top-decile capture) and churn (ROC AUC, PR AUC, Brier, ECE); models see nothing after the
    calibration cutoff.
    """
    changes = overrides(locals(), KEYS)
    try:
        settings = load_settings(config, changes, no_amounts)
        with resources.limits(settings.resources.threads):
            from clv.data.clean import load_run_inputs
            from clv.evaluation import evaluate as run_evaluation
            from clv.tables import write_json

            check_outputs(settings, config, [out], "--out")
            with reading_bar() as reading:
                inputs = load_run_inputs(settings, progress=reading)
            log = inputs.log
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = run_evaluation(log, settings, inputs.attributes, inputs.surveys)
            path = write_json(result.scorecard, out)
            if plots is not None:
                from clv.plots import save_evaluation_figures

                save_evaluation_figures(result, log.compact, plots)
    except ClvError as exc:
        raise fail(exc) from None
    print_cleaning(log.report)
    print_scorecard(result.scorecard, result.best_purchase_model)
    print_notices(clv_notices(caught))
    console.print(f"Scorecard: [bold]{path}[/]", highlight=False)
