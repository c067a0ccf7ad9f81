"""``clv train``: train, evaluate, log to MLflow and write a model bundle."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from clv import resources
from clv.cli.console import (
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
    TRACKING_DEFAULT,
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
    default,
    load_settings,
    overrides,
    run_inputs,
)
from clv.errors import ClvError

if TYPE_CHECKING:
    from clv.training import TrainResult


#: Options → config keys (defaults ← ``--config`` file ← these).
KEYS = (
    DATA_KEYS
    | ENGINE_KEYS
    | SPLIT_KEYS
    | RESOURCE_KEYS
    | {
        "model_dir": "train.model_dir",
        "model_dir_holds": "train.model_dir_holds",
        "seed": "train.seed",
        "wait": "train.lock_wait",
        "penalizer": "train.penalizer",
        "tracking_uri": "mlflow.tracking_uri",
        "experiment": "mlflow.experiment",
        "registered_model": "mlflow.registered_model",
        "mlflow": "mlflow.enabled",
    }
)


ModelDirOpt = Annotated[
    Path | None,
    typer.Option(help=f"Folder the bundle is written to {default('train.model_dir')}."),
]

ModelDirHoldsOpt = Annotated[
    str | None,
    typer.Option(
        help="champion: a challenger run writes <model-dir>-v<version> instead; latest: "
        f"every run writes --model-dir (pipelines) {default('train.model_dir_holds')}."
    ),
]

SeedOpt = Annotated[
    int | None,
    typer.Option(help=f"Seed of the churn classifier and its folds {default('train.seed')}."),
]

WaitOpt = Annotated[
    float | None,
    typer.Option(
        help="Seconds to wait when another run is writing the model folder; 0 stops at once "
        f"naming that run {default('train.lock_wait')}."
    ),
]

PenalizerOpt = Annotated[
    float | None,
    typer.Option(help=f"L2 penalizer of the first fit {default('train.penalizer')}."),
]

TrainTrackingOpt = Annotated[
    str | None,
    typer.Option(help=f"MLflow tracking URI {TRACKING_DEFAULT}."),
]

ExperimentOpt = Annotated[
    str | None, typer.Option(help=f"MLflow experiment {default('mlflow.experiment')}.")
]

RegisteredModelOpt = Annotated[
    str | None,
    typer.Option(
        help=f"Registry name {default('mlflow.registered_model', 'clv-<file stem of the log>')}."
    ),
]

MlflowOpt = Annotated[
    bool | None,
    typer.Option(
        "--mlflow/--no-mlflow", help=f"Log the run to MLflow {default('mlflow.enabled')}."
    ),
]


def train(
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
    model_dir: ModelDirOpt = None,
    model_dir_holds: ModelDirHoldsOpt = None,
    seed: SeedOpt = None,
    wait: WaitOpt = None,
    penalizer: PenalizerOpt = None,
    tracking_uri: TrainTrackingOpt = None,
    experiment: ExperimentOpt = None,
    registered_model: RegisteredModelOpt = None,
    mlflow: MlflowOpt = None,
) -> None:
    """Train, evaluate, log to MLflow and write a model bundle.

    BG/NBD, MBG/NBD, Pareto/NBD, GG/NBD and MBG/CNBD-k (with their equal-weight and stacked
    mixtures), Gamma-Gamma and a LightGBM churn classifier are fitted on a calibration period
    and scored on the holdout; the best purchase model is refitted, with Gamma-Gamma, on the
    whole log, and the churn model is retrained on the latest window.
    """
    changes = overrides(locals(), KEYS)
    started = time.perf_counter()
    try:
        settings = load_settings(config, changes, no_amounts)
        with resources.limits(settings.resources.threads):
            from clv.data.clean import load_run_inputs
            from clv.stages import StageLog
            from clv.training import run_guard
            from clv.training import train as run_training

            status: list[Any] = []  # the spinner, once it runs

            def show(line: str) -> None:
                console.print(line, highlight=False, soft_wrap=True)
                for spinner in status:
                    spinner.update(f"Training — last step: {line.split('] ', 1)[-1]}")

            stages = StageLog(show)
            sources = run_inputs(settings, config)
            with run_guard(settings, sources), warnings.catch_warnings():  # lock, store; notices
                warnings.simplefilter("ignore")
                with reading_bar() as reading:
                    inputs = load_run_inputs(settings, progress=reading)
                report = inputs.log.report
                stages(f"Read and cleaned {report.rows_read:,} rows")
                print_cleaning(report)
                with console.status("Training…", spinner="dots") as spinner:
                    status.append(spinner)
                    result = run_training(settings, inputs=inputs, stages=stages)
    except ClvError as exc:
        raise fail(exc) from None
    print_training(result)
    shown = report.implausible_note()  # printed with the cleaning report already
    print_notices([], [n for n in result.notices if n != shown])
    console.print(
        f"Model bundle: [bold]{result.path}[/]{placement(result)} "
        f"({time.perf_counter() - started:.1f} s)",
        highlight=False,
    )


def print_training(result: TrainResult) -> None:
    """The scorecard, the chosen model refitted, Gamma-Gamma, the churn model and the run."""
    bundle = result.bundle
    print_scorecard(bundle.scorecard, bundle.selection["chosen"])
    purchase, spend = bundle.purchase, bundle.spend
    console.print(
        f"Chosen: [bold]{purchase.name}[/] refitted on the whole log: {with_errors(purchase)}"
    )
    if spend is not None:
        console.print(
            f"Gamma-Gamma on {spend.n_customers:,} repeat buyers: {with_errors(spend)}",
            highlight=False,
        )
    if bundle.churn is not None and not bundle.churn.has_classifier:
        console.print(
            f"Churn: no classifier shipped; churn_probability is {purchase.name}'s P(no "
            f"purchase) within {bundle.churn.horizon:g} {bundle.churn.time_unit}s",
            highlight=False,
        )
    elif bundle.churn is not None:
        churn, window = bundle.churn, bundle.churn.window
        console.print(
            f"Churn model shipped: {churn.choice} for a {churn.horizon:g}-{churn.time_unit} "
            f"horizon, trained on features to {window['feature_cutoff']}, labels to "
            f"{window['label_end']}",
            highlight=False,
        )
    if result.run_id:
        reg = result.registry
        console.print(
            f"MLflow run {result.run_id}; registered {reg['registered_model']} "
            f"v{reg['version']} as {reg['alias']} — {reg['decision']}",
            highlight=False,
        )


def with_errors(model: Any) -> str:
    """``r 0.2426 (± 0.0127), …``: a model's parameters (and covariate effects) with their
    standard errors."""
    errors = model.standard_errors
    values = {**model.params, **getattr(model, "coefficients", {})}  # + covariate effects
    return ", ".join(
        f"{k} {v:.4g}" + (f" (± {errors[k]:.2g})" if k in errors else "") for k, v in values.items()
    )


def placement(result: TrainResult) -> str:
    """Why the bundle is where it is (champion folder, or a challenger's own folder)."""
    reg = result.registry
    if not reg:
        return ""
    if reg["alias"] == "champion":
        return f" — champion v{reg['version']}, the folder `clv score` uses by default"
    if result.bundle.config["train"]["model_dir_holds"] == "latest":
        return f" — challenger v{reg['version']} (train.model_dir_holds: latest)"
    return (
        f" — challenger v{reg['version']}; the default folder still holds champion "
        f"v{reg['champion_version']} (score this one with --model {result.path})"
    )
