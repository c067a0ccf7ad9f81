"""From a source to a cleaned :class:`~clv.data.log.TransactionLog`: read, screen, merge same-day
purchases — in memory, or in chunks through DuckDB for a large Parquet log — and the inputs a
run needs (log, customer attributes, surveys)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd

from clv.config import EMBEDDED_DATASETS, Config, DataConfig
from clv.data.bulk import BulkSummary
from clv.data.compact import AMOUNT, CUSTOMER, DATE, DAY, Compact, assemble, sum_same_days
from clv.data.customers import load_surveys, read_customer_list
from clv.data.log import TransactionLog
from clv.data.read import mapped_columns, read_transactions
from clv.data.report import EMPTY_LOG, cleaning_report, require_used
from clv.data.screen import RowCounts, screen_rows
from clv.data.whole_log import screen_bulk
from clv.errors import DataValidationError
from clv.tables import arrow_batches, connection, copy_to_parquet, is_parquet, private_temp_dir
from clv.uris import is_postgres


def _finish(
    used: pd.DataFrame | Path, counts: RowCounts, config: DataConfig, summary: BulkSummary
) -> TransactionLog:
    """Apply the whole-log part of rule 4, merge same-day purchases of the screened rows (a
    frame, or Parquet chunks in a folder, with the ``summary`` of their days and amounts) and
    write the cleaning report with the counts."""
    require_used(counts)
    keep, rule, counts = screen_bulk(used, counts, config, summary)
    daily = _merge_same_day(used, config.amount_col is not None, keep)
    days = daily.frame[DAY]
    report = cleaning_report(
        counts, config, rule, len(days), len(daily.ids), int(days.min()), int(days.max())
    )
    return TransactionLog(daily, report)


def clean_transactions(
    raw: pd.DataFrame, config: DataConfig, as_of: pd.Timestamp | None = None
) -> TransactionLog:
    """Validate a raw log and clean it into one row per customer and purchase day.

    Parameters
    ----------
    raw : pandas.DataFrame
        The log with the user's column names.
    config : DataConfig
        Column names, date format, timezone and the policies for negative and zero amounts.
    as_of : pandas.Timestamp, optional
        Rows dated after this day are ignored (and counted).

    Returns
    -------
    TransactionLog

    Raises
    ------
    DataValidationError
        On an empty log, missing columns, missing ids, missing or unparsable dates, missing or
        non-numeric amounts, negative amounts under the 'error' policy, or nothing left to use.
    """
    if len(raw) == 0:
        raise DataValidationError(EMPTY_LOG)
    used, counts = screen_rows(raw, config, as_of)
    return _finish(used, counts, config, _summarize(BulkSummary(), used, config))


def _summarize(summary: BulkSummary, used: pd.DataFrame, config: DataConfig) -> BulkSummary:
    """Count a chunk of screened rows into ``summary`` (the whole-log rule's statistics)."""
    amounts = used[AMOUNT].to_numpy() if config.amount_col is not None else None
    summary.add(used[DATE].to_numpy(), amounts)
    return summary


#: Rows per chunk when a Parquet log is read in pieces (about 0.3 GB of raw rows in memory).
PARQUET_CHUNK_ROWS = 5_000_000


def clean_parquet(
    path: str | Path,
    config: DataConfig,
    as_of: pd.Timestamp | None = None,
    progress: Callable[[int, int], None] | None = None,
    chunk_rows: int = PARQUET_CHUNK_ROWS,
) -> TransactionLog:
    """Clean a Parquet log chunk by chunk: the same rules as :func:`clean_transactions`, but
    only the mapped columns of ``chunk_rows`` rows are in memory at a time.

    Screened chunks go to a temporary Parquet folder; DuckDB merges same-day purchases and sorts
    the result from there (spilling to disk under its memory limit, see
    :func:`clv.tables.duckdb_settings`). ``progress(rows_done, rows_total)`` is called after
    each chunk. A validation error names the rows of the chunk where it was found (later chunks
    are not checked).
    """

    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise DataValidationError(f"{path} does not exist.")
    try:
        source = pq.ParquetFile(path)
    except (OSError, ValueError) as exc:
        raise DataValidationError(f"{path} could not be read as parquet: {exc}") from None
    names = source.schema_arrow.names
    config, columns = mapped_columns(config, names)
    total = source.metadata.num_rows
    if total == 0:
        raise DataValidationError(EMPTY_LOG)
    if total <= chunk_rows:  # one chunk: clean it in memory
        raw = source.read(columns=columns).to_pandas(date_as_object=False)
        return clean_transactions(raw, config, as_of)
    chunks = (
        b.to_pandas(date_as_object=False) for b in source.iter_batches(chunk_rows, columns=columns)
    )
    return _clean_chunks(chunks, total, config, as_of, progress, path.name)


def clean_postgres(
    uri: str,
    config: DataConfig,
    as_of: pd.Timestamp | None = None,
    progress: Callable[[int, int], None] | None = None,
    chunk_rows: int = PARQUET_CHUNK_ROWS,
) -> TransactionLog:
    """Clean a log in PostgreSQL (``data.table`` or ``data.query``) chunk by chunk, as
    :func:`clean_parquet` does a Parquet file: only the mapped columns are read, as Arrow
    batches through ADBC (:mod:`clv.data.postgres`), at most two chunks of ``chunk_rows`` rows
    in memory at a time (the first two, to tell a one-chunk log, cleaned in memory, apart).
    """
    from clv.data.postgres import PostgresLog

    source = PostgresLog(uri, config.table, config.query)
    names = source.columns()
    config, columns = mapped_columns(config, names)
    total = source.count()  # for the progress bar: the rows read are counted as they come
    chunks = source.chunks(columns, chunk_rows)
    first = next(chunks, None)
    if first is None:
        raise DataValidationError(EMPTY_LOG)
    second = next(chunks, None)
    if second is None:  # one chunk: clean it in memory
        return clean_transactions(first, config, as_of)
    return _clean_chunks(
        chain([first, second], chunks), max(total, 1), config, as_of, progress, source.name
    )


def _clean_chunks(
    chunks: Iterator[pd.DataFrame],
    total: int,
    config: DataConfig,
    as_of: pd.Timestamp | None,
    progress: Callable[[int, int], None] | None,
    name: str,
) -> TransactionLog:
    """Screen each chunk of a log into a temporary Parquet folder, then merge and report."""
    counts, summary = RowCounts(), BulkSummary()
    with private_temp_dir("clv-clean") as folder:
        for number, chunk in enumerate(chunks):
            start = counts.rows_read
            try:
                used, part = screen_rows(chunk, config, as_of, start)
            except DataValidationError as exc:
                raise DataValidationError(
                    f"{exc} (in rows {start + 1:,}–{start + len(chunk):,} of {name}; "
                    "row numbers in the message count from the start of those rows)"
                ) from None
            used.to_parquet(Path(folder) / f"{number:06d}.parquet", index=False)
            counts += part
            _summarize(summary, used, config)
            del used, chunk
            if progress is not None:
                progress(counts.rows_read, total)
        return _finish(Path(folder), counts, config, summary)


#: Rows per Arrow batch when the sorted rows are summed into days (:func:`sum_same_days`).
MERGE_BATCH_ROWS = 1_000_000


def _merge_same_day(used: pd.DataFrame | Path, has_amounts: bool, keep: str = "TRUE") -> Compact:
    """Merge a customer's purchases on the same day into one transaction (amounts summed).

    ``used`` is a frame or a folder of Parquet chunks; ``keep`` the SQL condition of the rows
    to use (:func:`screen_bulk`). DuckDB sorts the distinct ids (a customer's code is its
    rank), then every row by code and day — integer keys, where grouping and sorting every row
    by its text id took twice as long at 100M rows, and the amount as a third key 40 % longer
    — and :func:`sum_same_days` adds up each day's amounts in ascending order (the same totals
    whatever DuckDB's threads and wherever a batch ends). Rows of chunks on disk pass through a
    sorted Parquet file, so that DuckDB's memory is released before they are read back, a batch
    at a time.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    amount = f", {AMOUNT}::DOUBLE AS {AMOUNT}" if has_amounts else ""
    ids_sql = f"SELECT DISTINCT {CUSTOMER}::VARCHAR AS {CUSTOMER} FROM tx WHERE {keep} ORDER BY 1"
    rows_sql = (
        f"SELECT code, {DAY}{f', {AMOUNT}' if has_amounts else ''} FROM ("
        f"SELECT {CUSTOMER}::VARCHAR AS {CUSTOMER}, "
        f"date_diff('day', TIMESTAMP '1970-01-01', {DATE})::INTEGER AS {DAY}{amount} "
        f"FROM tx WHERE {keep}) JOIN ids USING ({CUSTOMER}) "
        f"ORDER BY code, {DAY}"
    )
    in_memory = isinstance(used, pd.DataFrame)
    with connection(tx=used if in_memory else used / "[0-9]*.parquet") as con:
        ids = con.sql(ids_sql).to_arrow_table().column(CUSTOMER).combine_chunks()
        codes = np.arange(len(ids), dtype=np.int32)
        con.register("ids", pa.table({CUSTOMER: ids, "code": codes}))
        if in_memory:
            batches = arrow_batches(con.sql(rows_sql), MERGE_BATCH_ROWS)
            merged = sum_same_days(batches, len(used), has_amounts)
        else:
            sorted_rows = copy_to_parquet(con, rows_sql, used / "merged.parquet")
    if not in_memory:
        source = pq.ParquetFile(sorted_rows)
        batches = source.iter_batches(MERGE_BATCH_ROWS)
        merged = sum_same_days(batches, source.metadata.num_rows, has_amounts)
    # codes are ranks in DuckDB's order; clv's lookups need the ids in Arrow's (binary) order
    ordered = len(ids) < 2 or pc.all(pc.less(ids[:-1], ids[1:])).as_py()
    if not ordered:
        raise AssertionError("DuckDB sorted the customer ids in an order Arrow does not")
    days_codes, days, amounts = merged
    return assemble(days_codes, ids.cast(pa.large_string()), True, days, amounts)


def load_transactions(
    source: str | Path,
    config: DataConfig,
    as_of: pd.Timestamp | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TransactionLog:
    """Read and clean a log in one call: Parquet files (:func:`clean_parquet`) and PostgreSQL
    tables or queries (:func:`clean_postgres`) chunk by chunk, CSV files and embedded data sets
    whole.

    See :func:`read_transactions` and :func:`clean_transactions` for parameters and errors.
    """
    if is_postgres(source):
        return clean_postgres(str(source), config, as_of, progress)
    if str(source) not in EMBEDDED_DATASETS and is_parquet(source):
        return clean_parquet(source, config, as_of, progress)
    raw, effective = read_transactions(source, config)
    return clean_transactions(raw, effective, as_of=as_of)


@dataclass(frozen=True)
class RunInputs:
    """What a training or evaluation run reads: the log (to ``train.as_of``), the customer
    attributes of ``train.customers`` and the survey table of ``data.surveys`` (None if unset)."""

    log: TransactionLog
    attributes: pd.DataFrame | None
    surveys: pd.DataFrame | None


def load_configured_log(
    config: Config, progress: Callable[[int, int], None] | None = None
) -> TransactionLog:
    """The cleaned log of ``data.transactions``, ignoring rows after ``train.as_of`` if set;
    with ``data.engine: spark`` cleaned on Spark (:func:`clean_on_spark`)."""
    if config.data.engine == "spark":
        return clean_on_spark(config)
    as_of = pd.Timestamp(config.train.as_of) if config.train.as_of else None
    return load_transactions(config.data.transactions, config.data, as_of=as_of, progress=progress)


def clean_on_spark(config: Config) -> TransactionLog:
    """The configured log cleaned on Spark (``data.engine: spark``, ``data.spark_master``):
    the same log and report as the local engine's, its rows held by Spark
    (:class:`clv.data.spark_log.SparkCompact`)."""
    from importlib.util import find_spec

    if find_spec("pyspark") is None:
        raise DataValidationError(
            "data.engine: spark needs pyspark, which is not installed: pip install "
            "'clv[spark]', or use --engine local."
        )
    from clv.data.spark_log import clean_spark
    from clv.spark import spark_session

    as_of = pd.Timestamp(config.train.as_of) if config.train.as_of else None
    spark = spark_session(config.data.spark_master)
    return clean_spark(spark, config.data.transactions, config.data, as_of)


def load_run_inputs(
    config: Config, progress: Callable[[int, int], None] | None = None
) -> RunInputs:
    """Read the log (reporting ``progress`` of a chunked read), customer attributes and surveys
    a run is configured with."""
    col = config.data.customer_col
    return RunInputs(
        log=load_configured_log(config, progress),
        attributes=read_customer_list(config.train.customers, col)
        if config.train.customers
        else None,
        surveys=load_surveys(config.data.surveys, config.data),
    )
