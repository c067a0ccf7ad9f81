"""The ``clv`` command: thin Typer commands over the library.

Heavy libraries (pandas, DuckDB, lifetimes, scipy) are imported inside the commands, so
``clv --help`` stays fast. Settings come from ``--config`` (by default ``configs/default.yaml``
when it exists in the working directory, else the built-in defaults, which are the same);
options given on the command line override the file.
"""

from __future__ import annotations

import datetime as dt
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
) -> dict[str, Any]:
    return {
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


def _print_cleaning(rows: list[tuple[str, str]]) -> None:
    console.print(_table("Cleaning report", ["rule", "rows"], [list(r) for r in rows]))


def _print_training(result: TrainResult) -> None:
    split = result.split
    unit = result.bundle.time_unit
    chosen = result.bundle.selection["chosen"]
    rows = [
        [
            s.model + (" ✓" if s.model == result.calibration_models[chosen].name else ""),
            f"{s.mae:.4f}",
            f"{s.rmse:.4f}",
            f"{s.aggregate_error_pct:+.2f} %",
            f"{s.predicted_total:,.0f}",
            f"{s.actual_total:,.0f}",
        ]
        for s in result.scores
    ]
    title = (
        f"Holdout purchases: calibration to {split.calibration_end.date()}, holdout "
        f"{split.duration:g} {unit}s to {split.observation_end.date()} "
        f"({result.bundle.selection['customers']:,} customers)"
    )
    console.print(
        _table(title, ["model", "MAE", "RMSE", "aggregate error", "predicted", "actual"], rows)
    )
    purchase, spend = result.bundle.purchase, result.bundle.spend
    params = ", ".join(f"{k} {v:.4g}" for k, v in purchase.params.items())
    console.print(f"Chosen: [bold]{purchase.name}[/] refitted on the whole log: {params}")
    if spend is not None:
        gg = ", ".join(f"{k} {v:.4g}" for k, v in spend.params.items())
        console.print(f"Gamma-Gamma on {spend.n_customers:,} repeat buyers: {gg}")


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
    time_unit: Annotated[str | None, typer.Option(help="day, week or month [week].")] = None,
    holdout: Annotated[
        float | None,
        typer.Option(help="Holdout length at the end of the log, in the time unit [26]."),
    ] = None,
    calibration_end: Annotated[
        dt.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Last calibration day; overrides --holdout."),
    ] = None,
    model_dir: Annotated[
        Path | None, typer.Option(help="Folder the bundle is written to [models/cdnow].")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the Pareto/NBD start [42].")] = None,
    penalizer: Annotated[
        float | None, typer.Option(help="L2 penalizer of the first fit [0].")
    ] = None,
) -> None:
    """Train purchase and spend models on a log and write a model bundle.

    BG/NBD, MBG/NBD and Pareto/NBD are fitted on a calibration period; the one with the lowest
    holdout MAE is refitted, with Gamma-Gamma, on the whole log.
    """
    overrides = _data_overrides(
        transactions, customer_col, date_col, amount_col, date_format, timezone
    )
    overrides |= {
        "features.time_unit": time_unit,
        "train.holdout": holdout,
        "train.calibration_end": calibration_end.date() if calibration_end else None,
        "train.model_dir": model_dir,
        "train.seed": seed,
        "train.penalizer": penalizer,
    }
    started = time.perf_counter()
    try:
        settings = _settings(config, overrides, no_amounts)
        from clv.training import train as run_training

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_training(settings)
    except ClvError as exc:
        raise _fail(exc) from None
    _print_cleaning(result.report.rows())
    _print_training(result)
    _print_notices([w for w in caught if issubclass(w.category, UserWarning)], result.notices)
    console.print(
        f"Model bundle: [bold]{result.path}[/] ({time.perf_counter() - started:.1f} s)",
        highlight=False,
    )


def _print_scores(scores: pd.DataFrame, horizon: float, unit: str, out: Path) -> None:
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
        clv = scores["clv"].sort_values(ascending=False)
        top = clv.iloc[: max(1, n // 10)].sum() / clv.sum() if clv.sum() > 0 else float("nan")
        rows += [
            ["mean expected spend per purchase", f"{scores['expected_avg_value'].mean():,.2f}"],
            ["total CLV", f"{clv.sum():,.0f}"],
            ["mean CLV", f"{clv.mean():,.2f}"],
            ["share of CLV in the top 10 %", f"{top:.1%}"],
        ]
    console.print(_table(f"Scores → {out}", ["", "value"], rows))


class _ProgressBar:
    """A rich progress bar that appears only for inputs of more than one chunk."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._task: Any = None

    def __call__(self, done: int, total: int) -> None:
        from clv.predict import CHUNK_SIZE

        if total <= CHUNK_SIZE:
            return
        if self._progress is None:
            from rich.progress import Progress

            self._progress = Progress(console=err_console, transient=True)
            self._progress.start()
            self._task = self._progress.add_task("Scoring customers", total=total)
        self._progress.update(self._task, completed=done)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


@app.command()
def score(
    config: ConfigOpt = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Bundle folder [models/cdnow].")
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
) -> None:
    """Score customers with a model bundle and write one row per customer.

    Columns: P(alive), expected purchases, P(no purchase), expected spend and discounted CLV
    over the horizon. The output file is written atomically.
    """
    overrides = _data_overrides(
        transactions, customer_col, date_col, amount_col, date_format, timezone
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
    }
    started = time.perf_counter()
    bar = _ProgressBar()
    try:
        settings = _settings(config, overrides, no_amounts)
        s = settings.score
        import pandas as pd

        from clv.data import load_transactions, read_customer_list
        from clv.predict import load_model, score_transactions
        from clv.tables import write_table

        bundle = load_model(s.model)
        as_of_day = pd.Timestamp(s.as_of) if s.as_of else None
        log = load_transactions(settings.data.transactions, settings.data, as_of=as_of_day)
        listed = (
            read_customer_list(s.customers, settings.data.customer_col) if s.customers else None
        )
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
        )
        path = write_table(scores, s.out)
    except ClvError as exc:
        raise _fail(exc) from None
    finally:
        bar.close()
    _print_cleaning(log.report.rows())
    unit = s.time_unit or bundle.time_unit
    _print_scores(scores, s.horizon, unit, path)
    notices = []
    if bundle.spend is None or not log.has_amounts:
        notices.append(
            "No amounts in the model or the log: value columns "
            "(expected_avg_value, clv) are absent."
        )
    _print_notices([], notices)
    console.print(
        f"Wrote {len(scores):,} rows to [bold]{path}[/] ({time.perf_counter() - started:.1f} s)",
        highlight=False,
    )


if __name__ == "__main__":  # pragma: no cover
    app()
