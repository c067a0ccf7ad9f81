"""The ``clv`` command: thin Typer commands over the library.

Heavy libraries (pandas, DuckDB, lifetimes, scipy) are imported inside the commands, so
``clv --help`` stays fast. Settings come from ``--config`` (by default ``configs/default.yaml``
when it exists in the working directory, else the built-in defaults, which are the same);
options given on the command line override the file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from clv.config import Config, load_config
from clv.errors import ClvError

if TYPE_CHECKING:
    import pandas as pd
    from rich.progress import Progress

    from clv.training import TrainResult

DEFAULT_CONFIG = Path("configs/default.yaml")

app = typer.Typer(
    help="Customer lifetime value: train BTYD + Gamma-Gamma models and score customer lists.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


@app.callback()
def _main() -> None:
    """Customer lifetime value: train BTYD + Gamma-Gamma models and score customer lists."""
    import signal

    # A terminated run (kill, a CI timeout, a closed terminal) unwinds like Ctrl-C: temporary
    # folders, DuckDB spill files and half-written outputs are removed on the way out.
    for sig in _terminating():
        signal.signal(sig, _terminate)


def _terminating() -> list[Any]:
    """SIGTERM, and SIGHUP where it exists (not on Windows)."""
    import signal

    return [getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)]


def _terminate(signum: int, frame: Any) -> None:
    import signal
    import sys

    if getattr(_terminate, "code", None) is not None:
        return  # a second signal must not cut the clean-up short (it may already be pending)
    for sig in _terminating():
        signal.signal(sig, signal.SIG_IGN)
    code = _terminate.code = 128 + signum  # type: ignore[attr-defined]
    # DuckDB turns the exit into "Query interrupted" after cleaning up: end quietly with the code
    sys.excepthook = lambda *_: os._exit(code)
    raise SystemExit(code)


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="YAML settings [default: configs/default.yaml if present]."
    ),
]
TransactionsOpt = Annotated[
    str | None,
    typer.Option(
        "--transactions",
        "-t",
        help="Transaction log (.csv/.parquet), or the embedded 'cdnow' / 'cdnow-sample'.",
    ),
]
CustomerColOpt = Annotated[str | None, typer.Option(help="Customer id column [customer_id].")]
DateColOpt = Annotated[str | None, typer.Option(help="Purchase date/time column [date].")]
AmountColOpt = Annotated[
    str | None, typer.Option(help="Amount column [amount]; optional when left at its default.")
]
NoAmountsOpt = Annotated[
    bool, typer.Option("--no-amounts", help="Ignore amounts: purchase models only.")
]
DateFormatOpt = Annotated[str | None, typer.Option(help="strftime format of dates, e.g. %Y%m%d.")]
TimezoneOpt = Annotated[str | None, typer.Option(help="Zone in which days are counted [UTC].")]
SurveysOpt = Annotated[
    str | None,
    typer.Option(
        help="Survey table (customer_id, date, nps, SERVQUAL items); feeds churn and KPIs."
    ),
]

DelimiterOpt = Annotated[
    str | None,
    typer.Option(
        help="Field delimiter of a text log: ',', ';', '|' or 'tab' (detected when not given)."
    ),
]
SurveyColOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--survey-col",
        help="Map a survey column, ROLE=COLUMN with ROLE customer_id, date or nps "
        "(repeatable; e.g. --survey-col nps=likelihood_to_recommend).",
    ),
]
CostColOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--cost-col",
        help="Map a cost-table column, ROLE=COLUMN with ROLE customer_id, channel or "
        "acquisition_cost (repeatable).",
    ),
]
#: ``--survey-col`` / ``--cost-col`` roles → config keys.
SURVEY_ROLES = {
    "customer_id": "data.survey_customer_col",
    "date": "data.survey_date_col",
    "nps": "data.survey_nps_col",
}
COST_ROLES = {
    "customer_id": "kpis.costs_customer_col",
    "channel": "kpis.costs_channel_col",
    "acquisition_cost": "kpis.costs_amount_col",
}


def _column_map(values: list[str] | None, roles: dict[str, str], option: str) -> dict[str, str]:
    """Config overrides from ``ROLE=COLUMN`` pairs of a mapping option."""
    out = {}
    for value in values or []:
        role, sep, column = value.partition("=")
        if not sep or role.strip() not in roles or not column.strip():
            raise typer.BadParameter(
                f"{value!r}: expected ROLE=COLUMN with ROLE one of {list(roles)}.",
                param_hint=option,
            )
        out[roles[role.strip()]] = column.strip()
    return out


def _settings(
    config_path: Path | None, overrides: dict[str, Any], no_amounts: bool = False
) -> Config:
    """Defaults ← config file ← command line; ``--no-amounts`` clears the amount column."""
    if config_path is None and DEFAULT_CONFIG.is_file():
        config_path = DEFAULT_CONFIG
    config = load_config(config_path).with_overrides(overrides)
    if no_amounts:
        config = config.model_copy(
            update={"data": config.data.model_copy(update={"amount_col": None})}
        )
    return config


def _data_overrides(
    transactions: str | None,
    customer_col: str | None,
    date_col: str | None,
    amount_col: str | None,
    date_format: str | None,
    timezone: str | None,
    surveys: str | None = None,
    delimiter: str | None = None,
    survey_cols: list[str] | None = None,
) -> dict[str, Any]:
    if delimiter is not None and delimiter.lower() in ("tab", "\\t"):
        delimiter = "\t"
    return _column_map(survey_cols, SURVEY_ROLES, "--survey-col") | {
        "data.delimiter": delimiter,
        "data.surveys": surveys,
        "data.transactions": transactions,
        "data.customer_col": customer_col,
        "data.date_col": date_col,
        "data.amount_col": amount_col,
        "data.date_format": date_format,
        "data.timezone": timezone,
    }


def _fail(exc: ClvError) -> typer.Exit:
    err_console.print(f"[bold red]Error:[/] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


def _table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def _print_notices(caught: list[warnings.WarningMessage], notices: list[str] = ()) -> None:
    for message in dict.fromkeys([*notices, *(str(w.message) for w in caught)]):
        err_console.print(f"[yellow]Notice:[/] {message}", highlight=False, soft_wrap=True)


def _print_cleaning(report: Any) -> None:
    """The cleaning report (a :class:`clv.data.CleaningReport` or its dict) and, when rows were
    implausible, which and why."""
    if isinstance(report, dict):
        from clv.data import CleaningReport

        report = CleaningReport(**report)
    rows = [list(r) for r in report.rows()]
    console.print(_table("Cleaning report", ["rule", "rows"], rows))
    note = report.implausible_note()
    if note:
        err_console.print(f"[yellow]Notice:[/] {note}", highlight=False, soft_wrap=True)


def _fmt(value: float, pct: bool = False) -> str:
    if value is None or value != value:  # NaN
        return "–"
    return f"{value:+.2f} %" if pct else f"{value:.4f}"


def _deviance(row: dict[str, Any]) -> str:
    """Poisson deviance for the table: ∞ where a forecast of 0 met a purchase."""
    if "poisson_deviance" not in row:  # a scorecard of an older clv
        return "–"
    value = row["poisson_deviance"]
    return "∞" if value is None else _fmt(value)


def _print_scorecard(card: dict[str, Any], chosen: str | None = None) -> None:
    from clv.evaluation import label

    protocol = card["protocol"]
    where = (
        f"calibration to {protocol['calibration_end']}, holdout {protocol['holdout_length']:g} "
        f"{protocol['time_unit']}s to {protocol['observation_end']} "
        f"({protocol['customers']:,} customers)"
    )
    mark = lambda key: label(key) + (" ✓" if key == chosen else "")  # noqa: E731
    rows = [
        [
            mark(k),
            _deviance(m),
            _fmt(m["rmse"]),
            _fmt(m["mae"]),
            _fmt(m["spearman"]),
            _fmt(m["aggregate_error_pct"], pct=True),
            f"{m['predicted_total']:,.0f}",
            f"{m['actual_total']:,.0f}",
        ]
        for k, m in card["purchases"].items()
    ]
    zero = card.get("zero_forecast")
    if zero is not None:  # MAE's blind spot, shown beside the models
        rows.append(["zero for everyone", "∞", _fmt(zero["rmse"]), _fmt(zero["mae"])] + [""] * 4)
    criterion = card.get("selection_metric", "mae").replace("_", " ")
    console.print(
        _table(
            f"Purchases — {where}; chosen ✓ by {criterion}",
            ["model", "deviance", "RMSE", "MAE", "Spearman", "agg. error", "predicted", "actual"],
            rows,
        )
    )
    if card.get("dropped"):
        names = ", ".join(label(k) for k in card["dropped"])
        console.print(
            f"[yellow]Dropped (did not converge; see the notices):[/] {names}", highlight=False
        )
    if card.get("conditional_expectations"):
        table = card["conditional_expectations"]
        keys = [k for k in table[0] if k not in ("frequency", "customers")]
        rows = [
            [r["frequency"], f"{r['customers']:,}", *(f"{r[k]:.3f}" for k in keys)] for r in table
        ]
        console.print(
            _table(
                "Mean holdout purchases by calibration frequency (actual vs predicted)",
                ["frequency", "customers", *(label(k) if k != "actual" else k for k in keys)],
                rows,
            )
        )
    if "value" in card:
        rows = [
            [
                label(k),
                _fmt(m["spearman"]),
                _fmt(m["normalized_gini"]),
                _fmt(m["top_decile_capture"]),
                f"{m['mae']:.2f}",
            ]
            for k, m in card["value"].items()
        ]
        console.print(
            _table(
                "Value (holdout revenue)",
                ["model", "Spearman", "norm. Gini", "top-decile capture", "MAE"],
                rows,
            )
        )
    if card.get("churn"):
        cp = card["churn_protocol"]
        ev = cp["evaluation_window"]
        rows = [
            [
                label(k) + (" (baseline)" if k == cp["baseline"] else ""),
                _fmt(m["roc_auc"]),
                _fmt(m["pr_auc"]),
                _fmt(m["brier"]),
                _fmt(m["ece"]),
            ]
            for k, m in card["churn"].items()
        ]
        title = (
            f"Churn: no purchase in {cp['horizon']:g} {protocol['time_unit']}s after "
            f"{ev['feature_cutoff']} (churn rate {ev['churn_rate']:.1%})"
        )
        console.print(_table(title, ["score", "ROC AUC", "PR AUC", "Brier", "ECE"], rows))
        console.print(
            f"Churn score decision (training window only): {cp['decision']}", highlight=False
        )
    if card.get("churn_note"):
        console.print(f"Churn: {card['churn_note']}", highlight=False)


def _print_training(result: TrainResult) -> None:
    bundle = result.bundle
    _print_scorecard(bundle.scorecard, bundle.selection["chosen"])
    purchase, spend = bundle.purchase, bundle.spend
    params = ", ".join(f"{k} {v:.4g}" for k, v in purchase.params.items())
    console.print(f"Chosen: [bold]{purchase.name}[/] refitted on the whole log: {params}")
    if spend is not None:
        gg = ", ".join(f"{k} {v:.4g}" for k, v in spend.params.items())
        console.print(f"Gamma-Gamma on {spend.n_customers:,} repeat buyers: {gg}")
    if bundle.churn is not None:
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


ChurnHorizonOpt = Annotated[
    float | None, typer.Option(help="Churn horizon H in the time unit [the holdout length].")
]
AttributesOpt = Annotated[
    str | None,
    typer.Option("--customers", help="Customer table whose extra columns feed the churn model."),
]
HoldoutOpt = Annotated[
    float | None, typer.Option(help="Holdout length at the end of the log, in the time unit [26].")
]
CalibrationEndOpt = Annotated[
    dt.datetime | None,
    typer.Option(formats=["%Y-%m-%d"], help="Last calibration day; overrides --holdout."),
]
AsOfOpt = Annotated[
    dt.datetime | None,
    typer.Option(formats=["%Y-%m-%d"], help="Use the log up to this day [its last day]."),
]
TimeUnitOpt = Annotated[str | None, typer.Option(help="day, week or month [week].")]


@app.command()
def train(
    config: ConfigOpt = None,
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
    as_of: AsOfOpt = None,
    time_unit: TimeUnitOpt = None,
    holdout: HoldoutOpt = None,
    calibration_end: CalibrationEndOpt = None,
    churn_horizon: ChurnHorizonOpt = None,
    customers: AttributesOpt = None,
    model_dir: Annotated[
        Path | None, typer.Option(help="Folder the bundle is written to [models/cdnow].")
    ] = None,
    model_dir_holds: Annotated[
        str | None,
        typer.Option(
            help="champion: a challenger run writes <model-dir>-v<version> instead; latest: "
            "every run writes --model-dir (pipelines) [champion]."
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the churn classifier and its folds [42].")
    ] = None,
    wait: Annotated[
        float | None,
        typer.Option(
            help="Seconds to wait when another run is writing the model folder; 0 stops at once "
            "naming that run [0]."
        ),
    ] = None,
    penalizer: Annotated[
        float | None, typer.Option(help="L2 penalizer of the first fit [0].")
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="MLflow tracking URI [$MLFLOW_TRACKING_URI or sqlite:///mlflow.db]."),
    ] = None,
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment [clv].")] = None,
    registered_model: Annotated[
        str | None, typer.Option(help="Registry name [clv-<file stem of the log>].")
    ] = None,
    mlflow: Annotated[
        bool | None, typer.Option("--mlflow/--no-mlflow", help="Log the run to MLflow [on].")
    ] = None,
) -> None:
    """Train, evaluate, log to MLflow and write a model bundle.

    BG/NBD, MBG/NBD and Pareto/NBD, Gamma-Gamma and a LightGBM churn classifier are fitted on a
    calibration period and scored on the holdout; the best purchase model is refitted, with
    Gamma-Gamma, on the whole log, and the churn model is retrained on the latest window.
    """
    overrides = _data_overrides(
        transactions,
        customer_col,
        date_col,
        amount_col,
        date_format,
        timezone,
        surveys,
        delimiter,
        survey_col,
    )
    overrides |= _split_overrides(
        as_of, time_unit, holdout, calibration_end, churn_horizon, customers
    )
    overrides |= {
        "train.model_dir": model_dir,
        "train.model_dir_holds": model_dir_holds,
        "train.seed": seed,
        "train.lock_wait": wait,
        "train.penalizer": penalizer,
        "mlflow.tracking_uri": tracking_uri,
        "mlflow.experiment": experiment,
        "mlflow.registered_model": registered_model,
        "mlflow.enabled": mlflow,
    }
    started = time.perf_counter()
    try:
        settings = _settings(config, overrides, no_amounts)
        from clv.data import load_run_inputs
        from clv.training import StageLog, run_guard
        from clv.training import train as run_training

        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # INFO lines drown the report
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        status: list[Any] = []  # the spinner, once it runs

        def show(line: str) -> None:
            console.print(line, highlight=False, soft_wrap=True)
            for spinner in status:
                spinner.update(f"Training — last step: {line.split('] ', 1)[-1]}")

        stages = StageLog(show)
        with run_guard(settings), warnings.catch_warnings():  # lock, store check; notices
            warnings.simplefilter("ignore")
            with _reading_bar() as reading:
                inputs = load_run_inputs(settings, progress=reading)
            report = inputs.log.report
            stages(f"Read and cleaned {report.rows_read:,} rows")
            _print_cleaning(report)
            with console.status("Training…", spinner="dots") as spinner:
                status.append(spinner)
                result = run_training(settings, inputs=inputs, stages=stages)
    except ClvError as exc:
        raise _fail(exc) from None
    _print_training(result)
    shown = report.implausible_note()  # printed with the cleaning report already
    _print_notices([], [n for n in result.notices if n != shown])
    console.print(
        f"Model bundle: [bold]{result.path}[/]{_placement(result)} "
        f"({time.perf_counter() - started:.1f} s)",
        highlight=False,
    )


def _placement(result: TrainResult) -> str:
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


def _split_overrides(
    as_of: dt.datetime | None,
    time_unit: str | None,
    holdout: float | None,
    calibration_end: dt.datetime | None,
    churn_horizon: float | None,
    customers: str | None,
) -> dict[str, Any]:
    return {
        "train.as_of": as_of.date() if as_of else None,
        "features.time_unit": time_unit,
        "train.holdout": holdout,
        "train.calibration_end": calibration_end.date() if calibration_end else None,
        "train.churn_horizon": churn_horizon,
        "train.customers": customers,
    }


@app.command()
def evaluate(
    config: ConfigOpt = None,
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
    overrides = _data_overrides(
        transactions,
        customer_col,
        date_col,
        amount_col,
        date_format,
        timezone,
        surveys,
        delimiter,
        survey_col,
    )
    overrides |= _split_overrides(
        as_of, time_unit, holdout, calibration_end, churn_horizon, customers
    )
    try:
        settings = _settings(config, overrides, no_amounts)
        from clv.data import load_run_inputs
        from clv.evaluation import evaluate as run_evaluation
        from clv.tables import write_json

        with _reading_bar() as reading:
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
        raise _fail(exc) from None
    _print_cleaning(log.report)
    _print_scorecard(result.scorecard, result.best_purchase_model)
    _print_notices(
        [w for w in caught if issubclass(w.category, UserWarning) and "/clv/" in w.filename]
    )
    console.print(f"Scorecard: [bold]{path}[/]", highlight=False)


def _print_scores(
    scores: pd.DataFrame, horizon: float, unit: str, out: Path, churn_horizon: float | None
) -> None:
    n = len(scores)
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
        ["mean P(no purchase)", f"{scores['p_no_purchase'].mean():.3f}"],
    ]
    if "clv" in scores:
        rows += [
            ["mean expected spend per purchase", f"{scores['expected_avg_value'].mean():,.2f}"],
            ["total CLV", f"{scores['clv'].sum():,.0f}"],
            ["mean CLV", f"{scores['clv'].mean():,.2f}"],
        ]
    if churn_horizon is not None:
        rows.append(
            [
                f"mean churn probability ({churn_horizon:g} {unit}s)",
                f"{scores['churn_probability'].mean():.3f}",
            ]
        )
    console.print(_table(f"Scores → {out}", ["", "value"], rows))
    ranked_by = "clv" if "clv" in scores else "expected_purchases"
    groups = scores.groupby("value_segment", sort=False)
    total = scores[ranked_by].sum()
    seg_rows = [
        [
            str(name),
            f"{len(g):,}",
            f"{len(g) / n:.1%}",
            f"{g[ranked_by].sum() / total:.1%}" if total > 0 else "–",
            f"{g['churn_probability'].mean():.3f}" if "churn_probability" in g else "–",
        ]
        for name, g in sorted(groups, key=lambda kv: -kv[1][ranked_by].mean())
    ]
    console.print(
        _table(
            f"Value segments (by {ranked_by})",
            ["segment", "customers", "share", f"share of {ranked_by}", "mean churn prob."],
            seg_rows,
        )
    )


def _which_model(uri: str, bundle: Any, default: bool) -> str:
    """One line saying which model scores: its registry version and alias when known."""
    reg = bundle.registry
    where = f"{uri} (the default folder: the last champion `clv train` placed)" if default else uri
    what = (
        f"{reg['registered_model']} v{reg['version']} ({reg['alias']} when trained)"
        if reg
        else "not registered"
    )
    return f"Model: {where} — {what}, {bundle.purchase.name}, trained {bundle.created}"


class _ProgressBar:
    """A transient rich progress bar that appears only when the work spans several chunks."""

    def __init__(self, description: str, chunk: int) -> None:
        self._description, self._chunk = description, chunk
        self._progress: Progress | None = None
        self._task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if total <= self._chunk:
            return
        if self._progress is None:
            from rich.progress import Progress

            self._progress = Progress(console=err_console, transient=True)
            self._progress.start()
            self._task = self._progress.add_task(self._description, total=total)
        self._progress.update(self._task, completed=done)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reading_bar() -> _ProgressBar:
    from clv.data import PARQUET_CHUNK_ROWS

    return _ProgressBar("Reading transactions", PARQUET_CHUNK_ROWS)


@app.command()
def score(
    config: ConfigOpt = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Bundle folder, or models:/NAME@alias, runs:/ID/model [models/cdnow].",
        ),
    ] = None,
    transactions: TransactionsOpt = None,
    customers: Annotated[
        str | None, typer.Option(help="CSV/Parquet list of ids to score (others are left out).")
    ] = None,
    as_of: Annotated[
        dt.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Score as of this day [last day of the log]."),
    ] = None,
    horizon: Annotated[
        float | None, typer.Option(help="Horizon in the time unit; may be fractional [52].")
    ] = None,
    time_unit: Annotated[
        str | None, typer.Option(help="Unit of horizon and discount rate [the bundle's].")
    ] = None,
    discount_rate: Annotated[
        float | None, typer.Option(help="Discount rate per time unit [0].")
    ] = None,
    margin: Annotated[float | None, typer.Option(help="Profit margin on spend [1].")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output .csv or .parquet.")
    ] = None,
    customer_col: CustomerColOpt = None,
    date_col: DateColOpt = None,
    amount_col: AmountColOpt = None,
    no_amounts: NoAmountsOpt = False,
    date_format: DateFormatOpt = None,
    timezone: TimezoneOpt = None,
    surveys: SurveysOpt = None,
    survey_col: SurveyColOpt = None,
    delimiter: DelimiterOpt = None,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI for models:/ and runs:/ models.")
    ] = None,
    engine: Annotated[
        str | None, typer.Option(help="local, or spark (Parquet folder out) [local].")
    ] = None,
    spark_master: Annotated[str | None, typer.Option(help="Spark master URL [local[2]].")] = None,
) -> None:
    """Score customers with a model and write one row per customer.

    Columns: P(alive), expected purchases, P(no purchase), expected spend and discounted CLV over
    the horizon, churn probability over the churn model's horizon, and value segment. The output
    file is written atomically.
    """
    overrides = _data_overrides(
        transactions,
        customer_col,
        date_col,
        amount_col,
        date_format,
        timezone,
        surveys,
        delimiter,
        survey_col,
    )
    overrides |= {
        "score.model": model,
        "score.customers": customers,
        "score.as_of": as_of.date() if as_of else None,
        "score.horizon": horizon,
        "score.time_unit": time_unit,
        "score.discount_rate": discount_rate,
        "score.margin": margin,
        "score.out": out,
        "mlflow.tracking_uri": tracking_uri,
        "score.engine": engine,
        "score.spark_master": spark_master,
    }
    started = time.perf_counter()
    from clv.predict import CHUNK_SIZE

    bar = _ProgressBar("Scoring customers", CHUNK_SIZE)
    try:
        settings = _settings(config, overrides, no_amounts)
        s = settings.score
        import pandas as pd

        from clv.data import load_surveys, load_transactions, read_customer_list
        from clv.predict import load_model, score_transactions, write_scores

        bundle = load_model(s.model, settings.mlflow.tracking_uri)
        console.print(_which_model(s.model, bundle, model is None), highlight=False)
        as_of_day = pd.Timestamp(s.as_of) if s.as_of else None
        with _reading_bar() as reading:
            log = load_transactions(
                settings.data.transactions, settings.data, as_of=as_of_day, progress=reading
            )
        listed = (
            read_customer_list(s.customers, settings.data.customer_col) if s.customers else None
        )
        surveys_table = load_surveys(settings.data.surveys, settings.data)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if s.engine == "spark":
                from clv.spark import score_log_with_spark

                path = score_log_with_spark(
                    s.model,
                    bundle,
                    log,
                    s.out,
                    s.horizon,
                    as_of=as_of_day,
                    customers=listed,
                    surveys=surveys_table,
                    time_unit=s.time_unit,
                    discount_rate=s.discount_rate,
                    margin=s.margin,
                    master=s.spark_master,
                )
                scores = pd.read_parquet(path)
            else:
                scores = score_transactions(
                    bundle,
                    log,
                    s.horizon,
                    as_of=as_of_day,
                    customers=listed,
                    time_unit=s.time_unit,
                    discount_rate=s.discount_rate,
                    margin=s.margin,
                    progress=bar,
                    segments=s.segments,
                    segment_rest=s.segment_rest,
                    surveys=surveys_table,
                )
                path = write_scores(scores, s.out)
    except ClvError as exc:
        raise _fail(exc) from None
    finally:
        bar.close()
    _print_cleaning(log.report)
    unit = s.time_unit or bundle.time_unit
    churn_h = None
    notices = [
        str(w.message)
        for w in caught
        if issubclass(w.category, UserWarning) and "/clv/" in w.filename
    ]
    if "churn_probability" in scores:
        from clv.config import DAYS_PER_UNIT

        churn_h = bundle.churn.horizon * DAYS_PER_UNIT[bundle.time_unit] / DAYS_PER_UNIT[unit]
        if abs(churn_h - s.horizon) > 1e-9:
            notices.append(
                f"churn_probability is for the churn model's horizon of {churn_h:g} {unit}s "
                f"(set at training with --churn-horizon), not for --horizon {s.horizon:g}."
            )
    _print_scores(scores, s.horizon, unit, path, churn_h)
    if bundle.spend is None or not log.has_amounts:
        why = "the model has no spend model" if bundle.spend is None else "the log has no amounts"
        notices.append(f"Value columns (expected_avg_value, clv) are absent: {why}.")
    _print_notices([], notices)
    console.print(
        f"Wrote {len(scores):,} rows to [bold]{path}[/] ({time.perf_counter() - started:.1f} s)",
        highlight=False,
    )


@app.command()
def prepare(
    config: ConfigOpt = None,
    transactions: TransactionsOpt = None,
    customer_col: CustomerColOpt = None,
    date_col: DateColOpt = None,
    amount_col: AmountColOpt = None,
    no_amounts: NoAmountsOpt = False,
    date_format: DateFormatOpt = None,
    timezone: TimezoneOpt = None,
    delimiter: DelimiterOpt = None,
    as_of: AsOfOpt = None,
    time_unit: TimeUnitOpt = None,
    holdout: HoldoutOpt = None,
    calibration_end: CalibrationEndOpt = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path(
        "data/prepared"
    ),
) -> None:
    """Clean the log and write it with RFM and calibration/holdout tables as Parquet."""
    overrides = _data_overrides(
        transactions, customer_col, date_col, amount_col, date_format, timezone, None, delimiter
    )
    overrides |= _split_overrides(as_of, time_unit, holdout, calibration_end, None, None)
    try:
        settings = _settings(config, overrides, no_amounts)
        from clv.prepare import prepare as run_prepare

        paths = run_prepare(settings, out)
    except ClvError as exc:
        raise _fail(exc) from None
    report = json.loads(paths["report"].read_text())
    _print_cleaning(report["cleaning"])
    for name, path in paths.items():
        console.print(f"{name}: [bold]{path}[/]", highlight=False)


@app.command()
def kpis(
    config: ConfigOpt = None,
    transactions: TransactionsOpt = None,
    customer_col: CustomerColOpt = None,
    date_col: DateColOpt = None,
    amount_col: AmountColOpt = None,
    date_format: DateFormatOpt = None,
    timezone: TimezoneOpt = None,
    surveys: SurveysOpt = None,
    survey_col: SurveyColOpt = None,
    delimiter: DelimiterOpt = None,
    costs: Annotated[
        str | None,
        typer.Option(help="Acquisition costs: customer_id or channel, and acquisition_cost."),
    ] = None,
    cost_col: CostColOpt = None,
    customers: Annotated[
        str | None, typer.Option(help="Customer table with a channel column (per-channel costs).")
    ] = None,
    as_of: AsOfOpt = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Bundle (or models:/…): CLV segments and a forecast."),
    ] = None,
    inactivity_days: Annotated[
        int | None,
        typer.Option(help="Days without a purchase after which a customer is lost [365]."),
    ] = None,
    expected_lifetime: Annotated[
        float | None, typer.Option(help="Expected lifetime in years [1 / annual churn rate].")
    ] = None,
    forecast_months: Annotated[int | None, typer.Option(help="Months of forecast [12].")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Report folder [reports/kpis].")
    ] = None,
    log_to_mlflow: Annotated[
        bool, typer.Option("--log-to-mlflow", help="Log the report as artifacts of an MLflow run.")
    ] = False,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI.")] = None,
) -> None:
    """Business KPIs: churn, retention, acquisition and repeat rates, simple CLV, NPS, SERVQUAL,
    value segments and a revenue forecast, as an offline HTML report plus JSON and CSV."""
    overrides = _data_overrides(
        transactions,
        customer_col,
        date_col,
        amount_col,
        date_format,
        timezone,
        surveys,
        delimiter,
        survey_col,
    )
    overrides |= {
        "train.as_of": as_of.date() if as_of else None,
        "kpis.costs": costs,
        **_column_map(cost_col, COST_ROLES, "--cost-col"),
        "kpis.customers": customers,
        "kpis.inactivity_days": inactivity_days,
        "kpis.expected_lifetime_years": expected_lifetime,
        "kpis.forecast_months": forecast_months,
        "kpis.out": out,
        "mlflow.tracking_uri": tracking_uri,
    }
    try:
        settings = _settings(config, overrides)

        from clv.data import load_configured_log, load_surveys
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
            os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
            from clv.tracking import log_kpi_report

            run_id = log_kpi_report(report, settings)
    except ClvError as exc:
        raise _fail(exc) from None
    _print_kpis(report.summary)
    console.print(
        f"Report: [bold]{paths[0]}[/] (+ {', '.join(p.name for p in paths[1:])})", highlight=False
    )
    if run_id:
        console.print(f"Logged to MLflow run {run_id} (artifacts kpis/)", highlight=False)


@app.command()
def monitor(
    config: ConfigOpt = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="Bundle folder or models:/NAME@champion [models/cdnow]."
        ),
    ] = None,
    transactions: TransactionsOpt = None,
    customer_col: CustomerColOpt = None,
    date_col: DateColOpt = None,
    amount_col: AmountColOpt = None,
    date_format: DateFormatOpt = None,
    timezone: TimezoneOpt = None,
    delimiter: DelimiterOpt = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder.")] = Path(
        "reports/monitor"
    ),
    fail_on_retrain: Annotated[
        bool,
        typer.Option("--fail-on-retrain", help="Exit with code 3 when the rule says retrain."),
    ] = False,
    mlflow: Annotated[
        bool, typer.Option("--mlflow/--no-mlflow", help="Log the result as an MLflow run [on].")
    ] = True,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI.")] = None,
) -> None:
    """Check a shipped model's forecasts (as of its training end) against a newer log.

    Purchases, churn and value in the window the newer log adds, by value segment and month,
    plus feature drift; writes JSON, CSV and an HTML page, and says whether to retrain.
    """
    overrides = _data_overrides(
        transactions, customer_col, date_col, amount_col, date_format, timezone, None, delimiter
    )
    overrides |= {"score.model": model, "mlflow.tracking_uri": tracking_uri}
    try:
        settings = _settings(config, overrides)
        from clv.data import load_transactions
        from clv.monitor import monitor as run_monitor
        from clv.monitor import write_monitoring
        from clv.predict import load_model

        bundle = load_model(settings.score.model, settings.mlflow.tracking_uri)
        console.print(_which_model(settings.score.model, bundle, model is None), highlight=False)
        with _reading_bar() as reading:
            log = load_transactions(settings.data.transactions, settings.data, progress=reading)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            result = run_monitor(bundle, log)
        paths = write_monitoring(result, out)
        run_id = None
        if mlflow:
            os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
            from clv.tracking import log_monitoring

            run_id = log_monitoring(result, paths, settings)
    except ClvError as exc:
        raise _fail(exc) from None
    _print_monitoring(result.summary)
    console.print(f"Report: [bold]{paths[0]}[/] (+ JSON, CSV)", highlight=False)
    if run_id:
        console.print(f"Logged to MLflow run {run_id}", highlight=False)
    if fail_on_retrain and result.summary["retrain"]:
        raise typer.Exit(code=3)


def _print_monitoring(s: dict[str, Any]) -> None:
    p = s["purchases"]
    rows = [
        ["window", f"{s['window']['from']} .. {s['window']['to']}"],
        ["customers forecast", f"{s['customers_forecast']:,}"],
        ["purchases predicted / actual", f"{p['predicted_total']:,.0f} / {p['actual_total']:,.0f}"],
        ["aggregate error", _fmt(p["aggregate_error_pct"], pct=True)],
        ["MAE / RMSE / deviance", f"{p['mae']:.4f} / {p['rmse']:.4f} / {_deviance(p)}"],
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
    console.print(_table("Monitoring", ["", "value"], rows))


NameOpt = Annotated[
    str | None,
    typer.Option("--name", help="Registered model [from the config: clv-<file stem of the log>]."),
]


@app.command()
def models(
    config: ConfigOpt = None,
    name: NameOpt = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI.")] = None,
) -> None:
    """List a registered model's versions: alias, champion metric, data window and decision."""
    try:
        settings = _settings(config, {"mlflow.tracking_uri": tracking_uri})
        from clv.tracking import model_versions, registered_model_name

        name = name or registered_model_name(settings)
        rows = model_versions(name, settings.mlflow.tracking_uri)
    except ClvError as exc:
        raise _fail(exc) from None
    table = [
        [
            f"v{r['version']}",
            ", ".join(r["aliases"]) or "–",
            r["chosen_model"],
            f"{r['metric']} {r['value']:.4f}" if r["value"] is not None else "–",
            r["data"],
            r["decision"],
        ]
        for r in rows
    ]
    columns = ["version", "alias", "model", "champion metric", "data", "decision"]
    console.print(_table(f"Registered model {name}", columns, table))


@app.command()
def promote(
    config: ConfigOpt = None,
    name: NameOpt = None,
    version: Annotated[int | None, typer.Option(help="Version to make champion.")] = None,
    run: Annotated[str | None, typer.Option(help="Or: the run that registered it.")] = None,
    model_dir: Annotated[
        Path | None,
        typer.Option(
            help="Also place its bundle here, the folder `clv score` serves [models/cdnow]."
        ),
    ] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI.")] = None,
) -> None:
    """Make a registered version the champion, and put its bundle in the served folder."""
    try:
        settings = _settings(
            config, {"mlflow.tracking_uri": tracking_uri, "train.model_dir": model_dir}
        )
        from clv.bundle import place_bundle
        from clv.tracking import download_bundle, registered_model_name
        from clv.tracking import promote as set_champion

        name = name or registered_model_name(settings)
        number = set_champion(name, version, run, settings.mlflow.tracking_uri)
        source = download_bundle(f"models:/{name}/{number}", settings.mlflow.tracking_uri)
        registry = {"registered_model": name, "version": number, "alias": "champion"}
        target = place_bundle(source, settings.train.model_dir, registry)
    except ClvError as exc:
        raise _fail(exc) from None
    console.print(f"{name} v{number} is now champion; its bundle is in [bold]{target}[/]")


def _print_kpis(summary: dict[str, Any]) -> None:
    p, c = summary["period"], summary["simple_clv"]
    rows = [
        ["period", f"{p['from']} .. {p['to']} ({p['months']} months)"],
        ["lost", summary["lost_definition"]],
        [
            "churn rate",
            f"{p['churn_rate']:.1%} ({p['customers_lost']:,} lost / "
            f"{p['average_active_customers']:,.0f} avg. active)",
        ],
        ["retention rate", f"{p['retention_rate']:.1%}"],
        ["new customers per month", f"{p['acquisition_rate_per_month']:,.1f}"],
        ["repeat-purchase rate", f"{p['repeat_purchase_rate']:.1%}"],
        ["annual revenue per customer", f"{p['annual_revenue_per_customer']:,.2f}"],
        [
            "expected lifetime (years)",
            f"{c['expected_lifetime_years']:.2f} ({c['lifetime_source']})",
        ],
        ["simple CLV", f"{c['simple_clv']:,.2f}"],
    ]
    if "acquisition_cost" in c:
        rows += [
            ["acquisition cost (CAC)", f"{c['acquisition_cost']:,.2f}"],
            ["CLV : CAC", f"{c['clv_to_cac']:.2f}"],
            ["ROI per customer", f"{c['roi_per_customer']:.2f}"],
        ]
    if "nps" in summary:
        n = summary["nps"]
        rows.append(["NPS", f"{n['nps']:+.1f} ({n['responses']:,} answers)"])
    if "servqual" in summary:
        rows.append(["SERVQUAL weighted gap", f"{summary['servqual']['weighted_gap']:+.3f}"])
    if "forecast" in summary:
        f = summary["forecast"]
        rows.append(
            [
                f"revenue forecast, {f['months']} months",
                f"{f['expected_revenue']:,.0f} ({f['scope']})",
            ]
        )
    console.print(_table(f"KPIs as of {summary['as_of']}", ["", "value"], rows))


if __name__ == "__main__":  # pragma: no cover
    app()
