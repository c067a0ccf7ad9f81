"""Reading a transaction log: CSV/Parquet files (through :mod:`clv.tables`) or the CDNOW logs
embedded in lifetimes, mapped to clv's column names."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pandas as pd

from clv.config import EMBEDDED_DATASETS, DataConfig
from clv.data.compact import AMOUNT, CUSTOMER, DATE
from clv.data.screen import require_columns
from clv.errors import DataValidationError
from clv.tables import read_table


def embedded_path(name: str) -> Path:
    """The raw file of an embedded log (``cdnow``, ``cdnow-sample``) inside lifetimes."""
    file = {"cdnow": "CDNOW_master.txt", "cdnow-sample": "CDNOW_sample.txt"}[name]
    spec = find_spec("lifetimes")  # locates the package without importing it (slow, noisy)
    if spec is None or spec.origin is None:
        raise DataValidationError(
            "The embedded CDNOW data ship with lifetimes, which is not installed."
        )
    return Path(spec.origin).parent / "datasets" / file


def read_embedded(name: str) -> pd.DataFrame:
    """Read one of the raw CDNOW logs that ship inside ``lifetimes``.

    Parameters
    ----------
    name : {"cdnow", "cdnow-sample"}
        ``cdnow``: the full log (23,570 customers, 1997-01-01 .. 1998-06-30);
        ``cdnow-sample``: the 2,357-customer sample used in the BTYD papers.

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id`` (str), ``date`` (str, YYYYMMDD), ``amount`` (float).
    """
    if name not in EMBEDDED_DATASETS:
        raise DataValidationError(
            f"Unknown embedded data set {name!r}; use one of {EMBEDDED_DATASETS}."
        )
    path = embedded_path(name)
    if name == "cdnow":
        raw = pd.read_csv(path, sep=r"\s+", dtype={"customer_id": "str", "date": "str"})
        return raw.rename(columns={"dollar_value": AMOUNT})[[CUSTOMER, DATE, AMOUNT]]
    raw = pd.read_csv(
        path,
        sep=r"\s+",
        header=None,
        names=[CUSTOMER, "customer_index", DATE, "number_of_cds", AMOUNT],
        dtype={CUSTOMER: "str", DATE: "str"},
    )
    return raw[[CUSTOMER, DATE, AMOUNT]]


def read_transactions(source: str | Path, config: DataConfig) -> tuple[pd.DataFrame, DataConfig]:
    """Read a raw log from a file or an embedded data set.

    Returns the raw frame and the column settings that apply to it: an embedded data set has its
    own column names and date format, whatever the config says; and a log without the default
    amount column (``amount``) is read without amounts (purchase models only), while an amount
    column named explicitly must exist.
    """
    if str(source) in EMBEDDED_DATASETS:
        embedded = config.model_copy(
            update={
                "customer_col": CUSTOMER,
                "date_col": DATE,
                "amount_col": AMOUNT if config.amount_col is not None else None,
                "date_format": "%Y%m%d",
            }
        )
        return read_embedded(str(source)), embedded
    frame = read_table(
        source, string_columns=(config.customer_col, config.date_col), delimiter=config.delimiter
    )
    return frame, for_columns(config, frame.columns)


def for_columns(config: DataConfig, columns: Any) -> DataConfig:
    """The default amount column is optional: a log without it is read without amounts
    (purchase models only); an amount column named explicitly must exist."""
    default_amount = DataConfig.model_fields["amount_col"].default
    if config.amount_col == default_amount and default_amount not in columns:
        return config.model_copy(update={"amount_col": None})
    return config


def mapped_columns(config: DataConfig, names: list[str]) -> tuple[DataConfig, list[str]]:
    """The settings that apply to a source with columns ``names`` (:func:`for_columns`) and the
    mapped columns to read from it; an error naming any mapped column it lacks."""
    config = for_columns(config, names)
    wanted = [config.customer_col, config.date_col, config.amount_col]
    columns = [c for c in dict.fromkeys(wanted) if c is not None and c in names]
    require_columns(pd.DataFrame(columns=columns), config)
    return config, columns
