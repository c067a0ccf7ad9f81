"""What the commands share: option definitions, option → config key maps, and settings.

Every option has a config key (:mod:`clv.config`); a command turns the options it was given
into overrides with :func:`overrides` and reads its settings with :func:`load_settings`
(defaults ← config file ← command line). Defaults shown in the help come from the config's
own field defaults (:func:`default`), so the two cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import typer

from clv.config import Config, load_config

DEFAULT_CONFIG = Path("configs/default.yaml")


@cache
def _defaults() -> dict[str, dict[str, Any]]:
    return Config().model_dump(mode="json")


def default(key: str, unset: str = "none") -> str:
    """The built-in default of a config key, as the help shows it: ``default("train.holdout")``
    is ``"[default: 26]"``; a key whose default is ``None`` shows ``unset``, what the command
    does then (``default("train.as_of", "the log's last day")``)."""
    section, _, name = key.partition(".")
    value = _defaults()[section][name]
    return f"[default: {shown(value) if value is not None else unset}]"


def shown(value: Any) -> str:
    """A config value as the help and the docs print it: floats in ``%g``, switches on/off,
    lists comma-separated."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(shown(v) for v in value)
    return str(value)


ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help=f"YAML settings [default: {DEFAULT_CONFIG} if present]."),
]
TransactionsOpt = Annotated[
    str | None,
    typer.Option(
        "--transactions",
        "-t",
        help="Transaction log (.csv/.parquet), the embedded 'cdnow' / 'cdnow-sample', or "
        "postgresql://user@host:port/db with --table or --query (password: PGPASSWORD or "
        f"~/.pgpass) {default('data.transactions')}.",
    ),
]
TableOpt = Annotated[
    str | None,
    typer.Option(
        "--table",
        help=f"Table or view of a PostgreSQL log (schema.table) {default('data.table', 'none')}.",
    ),
]
QueryOpt = Annotated[
    str | None,
    typer.Option(
        "--query", help=f"SELECT returning a PostgreSQL log {default('data.query', 'none')}."
    ),
]
CustomerColOpt = Annotated[
    str | None, typer.Option(help=f"Customer id column {default('data.customer_col')}.")
]
DateColOpt = Annotated[
    str | None, typer.Option(help=f"Purchase date/time column {default('data.date_col')}.")
]
AmountColOpt = Annotated[
    str | None,
    typer.Option(
        help=f"Amount column {default('data.amount_col')}; optional when left at its default."
    ),
]
NoAmountsOpt = Annotated[
    bool, typer.Option("--no-amounts", help="Ignore amounts: purchase models only.")
]
DateFormatOpt = Annotated[
    str | None,
    typer.Option(
        help="strftime format of dates, e.g. %Y%m%d "
        f"{default('data.date_format', 'parsed by DuckDB')}."
    ),
]
TimezoneOpt = Annotated[
    str | None, typer.Option(help=f"Zone in which days are counted {default('data.timezone')}.")
]
SurveysOpt = Annotated[
    str | None,
    typer.Option(
        help="Survey table (customer_id, date, nps, SERVQUAL items); feeds churn and KPIs "
        f"{default('data.surveys', 'none')}."
    ),
]
DelimiterOpt = Annotated[
    str | None,
    typer.Option(
        help="Field delimiter of a text log: ',', ';', '|' or 'tab' "
        f"{default('data.delimiter', 'detected by DuckDB')}."
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
ChurnHorizonOpt = Annotated[
    float | None,
    typer.Option(
        help="Churn horizon H in the time unit "
        f"{default('train.churn_horizon', 'the holdout length')}."
    ),
]
AttributesOpt = Annotated[
    str | None,
    typer.Option(
        "--customers",
        help="Customer table whose extra columns feed the churn model "
        f"{default('train.customers', 'none')}.",
    ),
]
HoldoutOpt = Annotated[
    float | None,
    typer.Option(
        help=f"Holdout length at the end of the log, in the time unit {default('train.holdout')}."
    ),
]
CalibrationEndOpt = Annotated[
    dt.datetime | None,
    typer.Option(
        formats=["%Y-%m-%d"],
        help="Last calibration day; overrides --holdout "
        f"{default('train.calibration_end', '--holdout before the end')}.",
    ),
]
AsOfOpt = Annotated[
    dt.datetime | None,
    typer.Option(
        formats=["%Y-%m-%d"],
        help=f"Use the log up to this day {default('train.as_of', 'its last day')}.",
    ),
]
TimeUnitOpt = Annotated[
    str | None, typer.Option(help=f"day, week or month {default('features.time_unit')}.")
]
TRACKING_DEFAULT = default("mlflow.tracking_uri", "$MLFLOW_TRACKING_URI, else sqlite:///mlflow.db")
TrackingUriOpt = Annotated[
    str | None, typer.Option(help=f"MLflow tracking URI {TRACKING_DEFAULT}.")
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        help="Threads for LightGBM, DuckDB and BLAS "
        + default(
            "resources.threads", "the CPUs this process may use, from its affinity and cgroup quota"
        )
        + "."
    ),
]
EngineOpt = Annotated[
    str | None,
    typer.Option(
        help="Where the log is read and cleaned: local, or spark (--transactions then names "
        f"any Spark source: a Parquet/ORC/CSV path, a Delta folder or a table) "
        f"{default('data.engine')}."
    ),
]
SparkMasterOpt = Annotated[
    str | None, typer.Option(help=f"Spark master URL {default('data.spark_master')}.")
]
NameOpt = Annotated[
    str | None,
    typer.Option(
        "--name",
        help="Registered model [default: mlflow.registered_model, else clv-<log file stem>].",
    ),
]

#: Options of every command that reads a log → config keys.
DATA_KEYS = {
    "transactions": "data.transactions",
    "customer_col": "data.customer_col",
    "date_col": "data.date_col",
    "amount_col": "data.amount_col",
    "date_format": "data.date_format",
    "timezone": "data.timezone",
    "surveys": "data.surveys",
    "delimiter": "data.delimiter",
    "table": "data.table",
    "query": "data.query",
}
#: ``--engine`` / ``--spark-master`` of the commands that train on a log → config keys.
ENGINE_KEYS = {"engine": "data.engine", "spark_master": "data.spark_master"}
#: ``--threads`` of the commands that compute → its config key.
RESOURCE_KEYS = {"threads": "resources.threads"}
#: Options of the commands that split the log into calibration and holdout → config keys.
SPLIT_KEYS = {
    "as_of": "train.as_of",
    "time_unit": "features.time_unit",
    "holdout": "train.holdout",
    "calibration_end": "train.calibration_end",
    "churn_horizon": "train.churn_horizon",
    "customers": "train.customers",
}
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


def overrides(values: dict[str, Any], keys: dict[str, str]) -> dict[str, Any]:
    """Config overrides from a command's option values (its ``locals()``).

    Each option named in ``keys`` sets its config key (``None``, an option not given, leaves
    the key alone); dates become days, ``--delimiter tab`` a tab, and the ``ROLE=COLUMN``
    pairs of ``--survey-col`` / ``--cost-col`` their column keys.
    """
    out: dict[str, Any] = {}
    for name, key in keys.items():
        value = values.get(name)
        if isinstance(value, dt.datetime):
            value = value.date()
        if name == "delimiter" and value is not None and value.lower() in ("tab", "\\t"):
            value = "\t"
        out[key] = value
    out |= _column_map(values.get("survey_col"), SURVEY_ROLES, "--survey-col")
    return out | _column_map(values.get("cost_col"), COST_ROLES, "--cost-col")


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


def config_file(config_path: Path | None) -> Path | None:
    """The config file a command reads: ``--config``, else ``configs/default.yaml`` when it is
    in the working folder."""
    if config_path is None and DEFAULT_CONFIG.is_file():
        return DEFAULT_CONFIG
    return config_path


def run_inputs(settings: Config, config_path: Path | None, *extra: Path) -> list[Path]:
    """The local files a command reads (:func:`clv.outputs.input_paths`, the config file
    included) and ``extra`` ones: what no output may be."""
    from clv.outputs import input_paths

    return [*input_paths(settings, config_file(config_path)), *extra]


def model_files(model: str | Path | None) -> list[Path]:
    """The files of a local model folder (inputs of scoring, KPIs and monitoring)."""
    folder = Path(model) if model else None
    return [p for p in folder.iterdir() if p.is_file()] if folder and folder.is_dir() else []


def check_outputs(
    settings: Config, config_path: Path | None, outputs: list[Path], option: str, *extra: Path
) -> None:
    """Refuse, before any work, an output file that is one of the command's inputs."""
    from clv.outputs import check_not_input

    check_not_input(outputs, run_inputs(settings, config_path, *extra), option)


def load_settings(
    config_path: Path | None, changes: dict[str, Any], no_amounts: bool = False
) -> Config:
    """Defaults ← config file ← command line; ``--no-amounts`` clears the amount column."""
    config = load_config(config_file(config_path)).with_overrides(changes)
    if no_amounts:
        config = config.model_copy(
            update={"data": config.data.model_copy(update={"amount_col": None})}
        )
    return config
