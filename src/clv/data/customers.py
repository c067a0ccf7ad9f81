"""Tables about customers beside the log: customer lists, surveys (NPS, SERVQUAL) and
acquisition costs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clv.config import SERVQUAL_DIMENSIONS, DataConfig
from clv.data.compact import CUSTOMER
from clv.data.screen import customer_ids, first_example
from clv.errors import DataValidationError
from clv.tables import read_table

#: SERVQUAL survey items: expectation_<dimension>[_<item>], perception_<dimension>[_<item>].
SERVQUAL_COLUMN = re.compile(
    rf"^(expectation|perception)_({'|'.join(SERVQUAL_DIMENSIONS)})(_\w+)?$"
)


def read_customer_list(path: str | Path, customer_col: str) -> pd.DataFrame:
    """Read a list of customers to score; extra columns are kept as attributes.

    Returns
    -------
    pandas.DataFrame
        With the id column renamed to ``customer_id`` (str).

    Raises
    ------
    DataValidationError
        If the id column is missing, an id is missing, or an id is listed twice.
    """
    frame = read_table(path, string_columns=(customer_col,))
    if customer_col not in frame.columns:
        raise DataValidationError(
            f"Customer list {path}: missing column {customer_col!r}; it has {list(frame.columns)}. "
            "Set --customer-col."
        )
    ids = customer_ids(frame[customer_col], customer_col)
    duplicated = ids.duplicated().to_numpy()
    if duplicated.any():
        raise DataValidationError(
            f"Customer list {path}: {int(duplicated.sum()):,} id(s) in {customer_col!r} are "
            f"listed more than once, e.g. {first_example(ids, duplicated)}. List each customer "
            "once."
        )
    out = frame.drop(columns=[customer_col])
    out.insert(0, CUSTOMER, ids.to_numpy())
    return out


def load_surveys(path: str | Path | None, config: DataConfig | None = None) -> pd.DataFrame | None:
    """Read and check a survey table (:func:`read_surveys`), its columns mapped by ``config``
    (``survey_customer_col``, ``survey_date_col``, ``survey_nps_col``); None without a path."""
    if path is None:
        return None
    config = config or DataConfig()
    mapping = {
        config.survey_customer_col or config.customer_col: (CUSTOMER, "survey_customer_col"),
        config.survey_date_col: ("date", "survey_date_col"),
        config.survey_nps_col: ("nps", "survey_nps_col"),
    }
    frame = read_table(path, string_columns=(config.survey_customer_col or config.customer_col,))
    required = list(mapping)[:2]
    missing = [f"{c!r} (data.{mapping[c][1]})" for c in required if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"Survey table {path}: missing column(s) {', '.join(missing)}; it has "
            f"{list(frame.columns)}. Map them with --survey-col ROLE=COLUMN (e.g. "
            "--survey-col customer_id=cust) or the config keys named."
        )
    renamed = {c: name for c, (name, _) in mapping.items() if c in frame.columns and c != name}
    return read_surveys(frame.rename(columns=renamed))


def load_costs(path: str | Path, customer_col: str, kpis: Any) -> pd.DataFrame:
    """Read an acquisition-cost table with its columns mapped by the ``kpis`` settings
    (``costs_customer_col`` — by default ``customer_col`` —, ``costs_channel_col``,
    ``costs_amount_col``) to ``customer_id``, ``channel`` and ``acquisition_cost``."""
    customer = kpis.costs_customer_col or customer_col
    frame = read_table(path, string_columns=(customer,))
    if kpis.costs_amount_col not in frame.columns:
        raise DataValidationError(
            f"Cost table {path}: missing column {kpis.costs_amount_col!r} (the cost; map it "
            f"with --cost-col acquisition_cost=COLUMN); it has {list(frame.columns)}."
        )
    if customer not in frame.columns and kpis.costs_channel_col not in frame.columns:
        raise DataValidationError(
            f"Cost table {path}: needs a customer column {customer!r} (--cost-col "
            f"customer_id=COLUMN) or a channel column {kpis.costs_channel_col!r} (--cost-col "
            f"channel=COLUMN); it has "
            f"{list(frame.columns)}."
        )
    mapping = {
        customer: CUSTOMER,
        kpis.costs_channel_col: "channel",
        kpis.costs_amount_col: "acquisition_cost",
    }
    return frame.rename(columns={c: n for c, n in mapping.items() if c in frame.columns})


def read_surveys(frame: pd.DataFrame, customer_col: str = CUSTOMER) -> pd.DataFrame:
    """Check a survey table: ``customer_id``, ``date``, ``nps`` (0–10) and/or SERVQUAL columns."""
    missing = [c for c in (customer_col, "date") if c not in frame]
    if missing:
        raise DataValidationError(
            f"Survey table: missing column(s) {missing}; it has {list(frame.columns)}."
        )
    out = frame.rename(columns={customer_col: CUSTOMER}).copy()
    out[CUSTOMER] = out[CUSTOMER].astype("str")
    out["date"] = pd.to_datetime(out["date"], errors="coerce")
    bad = out["date"].isna().to_numpy()
    if bad.any():
        raise DataValidationError(
            f"Survey table: {int(bad.sum())} row(s) with a missing or unparsable date, e.g. row "
            f"{int(np.flatnonzero(bad)[0]) + 1}."
        )
    if "nps" in out:
        score = pd.to_numeric(out["nps"], errors="coerce")
        answered = out["nps"].notna().to_numpy()
        wrong = answered & ~(score.between(0, 10) & (score == np.round(score))).to_numpy()
        if wrong.any():
            rows = (np.flatnonzero(wrong)[:5] + 1).tolist()
            raise DataValidationError(
                f"Survey column 'nps': {int(wrong.sum())} answer(s) outside the whole numbers "
                f"0–10, at row(s) {rows} (e.g. {out['nps'].iloc[rows[0] - 1]!r}). "
                "Fix or remove them."
            )
        out["nps"] = score
    if "nps" not in out and not any(SERVQUAL_COLUMN.match(c) for c in out.columns):
        raise DataValidationError(
            "Survey table: no 'nps' column and no SERVQUAL columns "
            "(expectation_<dimension>, perception_<dimension>)."
        )
    return out
