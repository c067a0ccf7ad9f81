"""The data layer: from a transaction log somewhere to a cleaned log clv can fit and score.

One module per job, data flowing down the list:

- :mod:`~clv.data.read` — read a log (CSV/Parquet, or CDNOW embedded in lifetimes) into clv's
  columns;
- :mod:`~clv.data.screen` — the screening rules (dates, amounts, returns, implausible rows) and
  the :class:`~clv.data.report.CleaningReport` that counts every row left out;
- :mod:`~clv.data.compact` — the compact log (int32 codes and day numbers) that SQL reads;
- :mod:`~clv.data.log` — :class:`~clv.data.log.TransactionLog`, a cleaned log and its report;
- :mod:`~clv.data.clean` — read, screen and merge in one pass (chunked for large Parquet), and
  the inputs of a run;
- :mod:`~clv.data.customers` — customer lists, surveys and acquisition costs.

The names below are the layer's public face; clv's own modules import from the submodules.
"""

from __future__ import annotations

from clv.data.clean import (
    EMPTY_LOG,
    PARQUET_CHUNK_ROWS,
    RunInputs,
    clean_parquet,
    clean_transactions,
    load_configured_log,
    load_run_inputs,
    load_transactions,
)
from clv.data.compact import (
    AMOUNT,
    CUSTOMER,
    DATE,
    DAY,
    Compact,
    compact,
    day_number,
    day_start,
    sorted_arrays,
)
from clv.data.customers import (
    SERVQUAL_COLUMN,
    load_costs,
    load_surveys,
    read_customer_list,
    read_surveys,
)
from clv.data.log import TransactionLog
from clv.data.read import read_embedded, read_transactions
from clv.data.report import CleaningReport
from clv.data.screen import MAX_ABS_AMOUNT

__all__ = [
    "AMOUNT",
    "CUSTOMER",
    "DATE",
    "DAY",
    "EMPTY_LOG",
    "MAX_ABS_AMOUNT",
    "PARQUET_CHUNK_ROWS",
    "SERVQUAL_COLUMN",
    "CleaningReport",
    "Compact",
    "RunInputs",
    "TransactionLog",
    "clean_parquet",
    "clean_transactions",
    "compact",
    "day_number",
    "day_start",
    "load_configured_log",
    "load_costs",
    "load_run_inputs",
    "load_surveys",
    "load_transactions",
    "read_customer_list",
    "read_embedded",
    "read_surveys",
    "read_transactions",
    "sorted_arrays",
]
