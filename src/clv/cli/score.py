"""``clv score``: forward-looking value per customer, written atomically."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from clv import resources
from clv.cli.console import (
    ProgressBar,
    clv_notices,
    console,
    fail,
    print_cleaning,
    print_notices,
    reading_bar,
    table,
    which_model,
)
from clv.cli.options import (
    DATA_KEYS,
    RESOURCE_KEYS,
    TRACKING_DEFAULT,
    AmountColOpt,
    ConfigOpt,
    CustomerColOpt,
    DateColOpt,
    DateFormatOpt,
    DelimiterOpt,
    NoAmountsOpt,
    QueryOpt,
    SurveyColOpt,
    SurveysOpt,
    TableOpt,
    ThreadsOpt,
    TimezoneOpt,
    TransactionsOpt,
    check_outputs,
    default,
    load_settings,
    model_files,
    overrides,
    run_inputs,
)
from clv.errors import ClvError

if TYPE_CHECKING:
    import pandas as pd


#: Options → config keys (defaults ← ``--config`` file ← these).
KEYS = (
    DATA_KEYS
    | RESOURCE_KEYS
    | {
        "model": "score.model",
        "customers": "score.customers",
        "as_of": "score.as_of",
        "horizon": "score.horizon",
        "time_unit": "score.time_unit",
        "discount_rate": "score.discount_rate",
        "margin": "score.margin",
        "interval": "score.interval",
        "out": "score.out",
        "out_table": "score.out_table",
        "if_exists": "score.if_exists",
        "tracking_uri": "mlflow.tracking_uri",
        "engine": "score.engine",
        "spark_master": "score.spark_master",
    }
)


ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help=f"Bundle folder, or models:/NAME@alias, runs:/ID/model {default('score.model')}.",
    ),
]
ListOpt = Annotated[
    str | None,
    typer.Option(
        "--customers",
        help="CSV/Parquet list of ids to score (others are left out) "
        f"{default('score.customers', 'every customer in the log')}.",
    ),
]
ScoreAsOfOpt = Annotated[
    dt.datetime | None,
    typer.Option(
        "--as-of",
        formats=["%Y-%m-%d"],
        help=f"Score as of this day {default('score.as_of', 'the last day of the log')}.",
    ),
]
HorizonOpt = Annotated[
    float | None,
    typer.Option(help=f"Horizon in the time unit; may be fractional {default('score.horizon')}."),
]
ScoreUnitOpt = Annotated[
    str | None,
    typer.Option(
        "--time-unit",
        help="Unit of horizon and discount rate "
        + default("score.time_unit", "the bundle's unit")
        + ".",
    ),
]
DiscountOpt = Annotated[
    float | None,
    typer.Option(help=f"Discount rate per time unit {default('score.discount_rate')}."),
]
MarginOpt = Annotated[
    float | None, typer.Option(help=f"Profit margin on spend {default('score.margin')}.")
]
IntervalOpt = Annotated[
    float | None,
    typer.Option(
        help="Level of the predictive intervals (expected_purchases_low/high, clv_low/high) "
        f"and of the totals' ranges; 0 for none {default('score.interval')}."
    ),
]
OutOpt = Annotated[
    str | None,
    typer.Option(
        "--out",
        "-o",
        help="Output .csv or .parquet, or postgresql://user@host:port/db with --out-table "
        f"{default('score.out')}.",
    ),
]
OutTableOpt = Annotated[
    str | None,
    typer.Option(
        help="Table (schema.table) for the scores when --out is a PostgreSQL URI "
        f"{default('score.out_table', 'none')}."
    ),
]
IfExistsOpt = Annotated[
    str | None,
    typer.Option(
        help="When --out-table exists: replace (swapped in one transaction), append (rows "
        f"carry as_of and model_version) or fail {default('score.if_exists')}."
    ),
]
ScoreTrackingOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help=f"MLflow tracking URI for models:/ and runs:/ models {TRACKING_DEFAULT}.",
    ),
]
ScoreEngineOpt = Annotated[
    str | None,
    typer.Option(
        "--engine", help=f"local, or spark (Parquet folder out) {default('score.engine')}."
    ),
]
ScoreMasterOpt = Annotated[
    str | None,
    typer.Option("--spark-master", help=f"Spark master URL {default('score.spark_master')}."),
]


def score(
    config: ConfigOpt = None,
    threads: ThreadsOpt = None,
    model: ModelOpt = None,
    transactions: TransactionsOpt = None,
    customers: ListOpt = None,
    as_of: ScoreAsOfOpt = None,
    horizon: HorizonOpt = None,
    time_unit: ScoreUnitOpt = None,
    discount_rate: DiscountOpt = None,
    margin: MarginOpt = None,
    interval: IntervalOpt = None,
    out: OutOpt = None,
    out_table: OutTableOpt = None,
    if_exists: IfExistsOpt = None,
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
    query: QueryOpt = None,
    tracking_uri: ScoreTrackingOpt = None,
    engine: ScoreEngineOpt = None,
    spark_master: ScoreMasterOpt = None,
) -> None:
    """Score customers with a model and write one row per customer.

    Columns: P(alive), expected purchases, P(no purchase), expected spend and discounted CLV over
    the horizon (with predictive intervals), churn probability over the churn model's horizon,
    and value segment. The totals are printed with their ranges. The output file is written
    atomically.
    """
    changes = overrides(locals(), KEYS)
    started = time.perf_counter()
    from clv.predict import CHUNK_SIZE

    bar = ProgressBar("Scoring customers", CHUNK_SIZE)
    try:
        settings = load_settings(config, changes, no_amounts)
        with resources.limits(settings.resources.threads):
            from clv.predict import load_model
            from clv.predict.job import database_output, score_job

            s = settings.score
            to_database = database_output(s)
            if not to_database:
                check_score_output(settings, config)
            bundle = load_model(s.model, settings.mlflow.tracking_uri)
            console.print(which_model(s.model, bundle, model is None), highlight=False)
            run = score_job(settings, bundle, to_database, bar, reading_bar)
    except ClvError as exc:
        raise fail(exc) from None
    finally:
        bar.close()
    print_cleaning(run.report)
    print_run(run, bundle, s)
    console.print(
        f"Wrote {len(run.scores):,} rows to [bold]{run.path}[/] "
        f"({time.perf_counter() - started:.1f} s)",
        highlight=False,
    )


def print_run(run: Any, bundle: Any, s: Any) -> None:
    """The scores' summary and segments, and the notices: the churn horizon when it is not the
    scoring horizon, value columns left out and why."""
    scores = run.scores
    unit = s.time_unit or bundle.time_unit
    churn_h = None
    notices = [str(w.message) for w in clv_notices(run.caught)]
    if "churn_probability" in scores:
        from clv import units

        churn_h = bundle.churn.horizon * units.conversion(bundle.time_unit, unit)
        if abs(churn_h - s.horizon) > 1e-9:
            notices.append(
                f"churn_probability is for the churn model's horizon of {churn_h:g} {unit}s "
                f"(set at training with --churn-horizon), not for --horizon {s.horizon:g}."
            )
    print_scores(scores, s.horizon, unit, run.path, churn_h)
    if bundle.spend is None or not run.has_amounts:
        why = "the model has no spend model" if bundle.spend is None else "the log has no amounts"
        notices.append(f"Value columns (expected_avg_value, clv) are absent: {why}.")
    print_notices([], notices)


def check_score_output(settings: Any, config_path: Path | None) -> None:
    """Refuse, before any work, a score file that is one of the inputs (the log, a list, the
    config, a file of the model folder), and a Spark output folder that is not Spark's own."""
    s = settings.score
    extra = model_files(s.model)
    if s.engine != "spark":
        check_outputs(settings, config_path, [Path(s.out)], "--out", *extra)
        return
    from clv.outputs import check_replaceable_folder, not_of_spark

    inputs = run_inputs(settings, config_path, *extra)
    check_replaceable_folder(s.out, not_of_spark, "a Spark score folder", inputs, "--out")


def range_text(total: dict[str, float]) -> str:
    """``low – high (±x %; parameters y %)``: a total's range and what it is made of."""
    estimate = total["estimate"]
    share = (total["high"] - estimate) / estimate if estimate > 0 else float("nan")
    text = f"{total['low']:,.0f} – {total['high']:,.0f} (±{share:.1%}"
    if total["parameter_sd"] == total["parameter_sd"]:  # not NaN
        process, parameters = total["process_sd"] ** 2, total["parameter_sd"] ** 2
        text += f"; {parameters / (process + parameters):.0%} of it parameter uncertainty"
    else:
        text += "; the model carries no parameter covariance: retrain to include it"
    return text + ")"


def print_scores(
    scores: pd.DataFrame, horizon: float, unit: str, out: Path | str, churn_horizon: float | None
) -> None:
    """The scores' summary with the totals' ranges, and the value segments."""
    n = len(scores)
    ranges = scores.attrs.get("ranges", {})
    rows = [
        ["customers scored", f"{n:,}"],
        [
            "  with history / new",
            f"{int(scores['has_history'].sum()):,} / {int((~scores['has_history']).sum()):,}",
        ],
        ["mean P(alive)", f"{scores['p_alive'].mean():.3f}"],
        [
            f"expected purchases in {horizon:g} {unit}s",
            f"{scores['expected_purchases'].sum():,.0f}",
        ],
    ]
    if "purchases" in ranges:
        purchases = ranges["purchases"]
        rows.append([f"  {purchases['level']:.0%} range", range_text(purchases)])
    rows.append(["mean P(no purchase)", f"{scores['p_no_purchase'].mean():.3f}"])
    if "clv" in scores:
        rows += [
            ["mean expected spend per purchase", f"{scores['expected_avg_value'].mean():,.2f}"],
            ["total CLV", f"{scores['clv'].sum():,.0f}"],
        ]
        if "clv" in ranges:
            rows.append([f"  {ranges['clv']['level']:.0%} range", range_text(ranges["clv"])])
        rows.append(["mean CLV", f"{scores['clv'].mean():,.2f}"])
    if churn_horizon is not None:
        rows.append(
            [
                f"mean churn probability ({churn_horizon:g} {unit}s)",
                f"{scores['churn_probability'].mean():.3f}",
            ]
        )
    console.print(table(f"Scores → {out}", ["", "value"], rows))
    ranked_by = "clv" if "clv" in scores else "expected_purchases"
    # the columns the table reads, aggregated (not a copy of every column per segment: 2.5 s
    # and a gigabyte at 5.5M customers)
    groups = scores.groupby("value_segment", sort=False)
    size, ranked = groups.size(), groups[ranked_by]
    share, mean = ranked.sum(), ranked.mean()
    churn = groups["churn_probability"].mean() if "churn_probability" in scores else None
    total = scores[ranked_by].sum()
    seg_rows = [
        [
            str(name),
            f"{size[name]:,}",
            f"{size[name] / n:.1%}",
            f"{share[name] / total:.1%}" if total > 0 else "–",
            f"{churn[name]:.3f}" if churn is not None else "–",
        ]
        for name in sorted(mean.index, key=lambda name: -mean[name])
    ]
    console.print(
        table(
            f"Value segments (by {ranked_by})",
            ["segment", "customers", "share", f"share of {ranked_by}", "mean churn prob."],
            seg_rows,
        )
    )
