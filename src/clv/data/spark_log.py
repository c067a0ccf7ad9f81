"""Cleaning a log on Spark: ``--engine spark`` of ``clv train``, ``clv evaluate`` and
``clv prepare``, for logs that outgrow one machine.

The log is read from any Spark source (:func:`read_source`: a Parquet, Delta, ORC or CSV path,
or a table name) and cleaned on the cluster with the **same rules** as the local engine:

1. rules 1–3 and the row-wise part of rule 4 (:func:`clv.data.screen.screen_rows`, the very
   function the local engine runs) are applied to each partition on the executors
   (``mapInPandas``), each partition returning its rows kept and its counts;
2. the whole-log part of rule 4 (:func:`clv.data.whole_log.screen_bulk`) runs as Spark SQL over
   the kept rows — the same SQL, with Spark's ``percentile_disc`` for DuckDB's
   ``quantile_disc`` (the same definition);
3. same-day purchases are merged and customer codes (positions in the sorted ids) assigned
   with Spark SQL.

The result is a :class:`~clv.data.log.TransactionLog` whose compact view is a
:class:`SparkCompact`: the cleaned log as a Spark table of codes, day numbers and amounts, with
the sorted ids on the driver. Every step that reads the log — the feature builders of
:mod:`clv.features` and :mod:`clv.churn`, the KPI report, the plots, the fingerprint — runs
its SQL (or, for the fingerprint, its hashing) on the cluster, so only per-customer and
per-day tables reach the driver; :meth:`SparkCompact.collect` brings the log itself (about 16
bytes a transaction) when asked (``clv prepare`` writes it).

Example rows in messages count from the start of the partition where they were found (Spark
has no global row order); the messages say which partition.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from clv.config import EMBEDDED_DATASETS, DataConfig
from clv.data.compact import (
    AMOUNT,
    CUSTOMER,
    DATE,
    DAY,
    DIGEST_CUSTOMERS,
    Compact,
    assemble,
    block_digest,
    ids_digest,
)
from clv.data.log import TransactionLog
from clv.data.read import mapped_columns, read_transactions
from clv.data.report import EMPTY_LOG, CleaningReport, cleaning_report, require_used
from clv.data.screen import RowCounts, screen_rows
from clv.data.whole_log import BulkSql, screen_bulk
from clv.errors import DataValidationError

#: Rows per Arrow batch handed to the screening on the executors.
BATCH_ROWS = 1_000_000

_SCREENED = f"{CUSTOMER} string, {DATE} timestamp_ntz, {AMOUNT} double, part int, info string"

_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".orc": "orc", ".csv": "csv"}


def _reader(spark: Any, source: str) -> Any:
    """The Spark DataFrame of a path — local or a URI (``s3a://…``, ``hdfs://…``); the format
    by suffix, a folder being Parquet, or Delta when it has a ``_delta_log`` — or of a table
    name."""
    path = Path(source)
    suffixes = [s.lower() for s in path.suffixes]
    if path.exists() or "://" in source:
        if path.is_dir() and (path / "_delta_log").is_dir():
            return spark.read.format("delta").load(source)
        if ".csv" in suffixes or ".tsv" in suffixes:
            sep = "\t" if ".tsv" in suffixes else ","
            return spark.read.csv(source, header=True, sep=sep, inferSchema=False)
        kind = _FORMATS.get(suffixes[-1] if suffixes else "", "parquet")
        return spark.read.format(kind).load(source)
    if "/" in source or (suffixes and suffixes[-1] in _FORMATS):
        raise DataValidationError(f"{source} does not exist.")
    return spark.read.table(source)


def read_source(spark: Any, source: str, config: DataConfig) -> tuple[Any, DataConfig]:
    """The raw log as a Spark DataFrame of its mapped columns, and the settings that apply.

    ``source`` is an embedded data set (read locally, then handed to Spark), a path (Parquet,
    ORC, Delta folder, CSV/TSV with a header) or the name of a table in the session's catalog.
    """
    from pyspark.errors import AnalysisException

    if source in EMBEDDED_DATASETS:
        raw, config = read_transactions(source, config)
        return spark.createDataFrame(raw), config
    try:
        frame = _reader(spark, source)
    except AnalysisException as exc:
        first = str(exc).splitlines()[0]
        raise DataValidationError(
            f"Spark could not read {source!r} as a path or a table: {first}"
        ) from None
    config, columns = mapped_columns(config, frame.columns)
    return frame.select(*columns), config


def _screen(
    config: DataConfig, as_of: pd.Timestamp | None, instants: tuple[str, ...]
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The function each executor runs over its partition's batches: screen the rows, yield
    those kept, then one row with the partition's counts (or its first error) in ``info``."""

    def screen(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from pyspark import TaskContext

        part = TaskContext.get().partitionId()
        counts, offset = RowCounts(), 0
        try:
            for raw in batches:
                for column in instants:  # Spark timestamps are instants, handed over in UTC
                    raw[column] = raw[column].dt.tz_localize("UTC")
                used, found = screen_rows(raw, config, as_of, offset)
                offset, counts = offset + len(raw), counts + found
                out = pd.DataFrame(
                    {CUSTOMER: used[CUSTOMER].to_numpy(), DATE: used[DATE].to_numpy()}
                )
                out[AMOUNT] = used[AMOUNT].to_numpy() if AMOUNT in used else np.nan
                yield out.assign(part=part, info=None)
            info = {"counts": asdict(counts)}
        except DataValidationError as exc:
            info = {"error": str(exc)}
        yield pd.DataFrame(
            {CUSTOMER: [None], DATE: [pd.NaT], AMOUNT: [np.nan], "part": [part]}
        ).assign(info=json.dumps(info))

    return screen


def _dates_as_timestamps(frame: Any, column: str) -> tuple[Any, tuple[str, ...]]:
    """Dates (Spark ``date``) become timestamps at midnight, as a Parquet date column does
    locally; the names of the columns holding instants (``timestamp``) to be read in UTC."""
    from pyspark.sql import functions
    from pyspark.sql.types import DateType, TimestampType

    kind = frame.schema[column].dataType
    if isinstance(kind, DateType):
        return frame.withColumn(column, functions.col(column).cast("timestamp_ntz")), ()
    return frame, (column,) if isinstance(kind, TimestampType) else ()


def _counts(infos: list[Any], source: str) -> RowCounts:
    """The partitions' counts added up in partition order; the first error stops."""
    counts = RowCounts()
    for part, text in sorted(infos):
        info = json.loads(text)
        if "error" in info:
            raise DataValidationError(
                f"{info['error']} (in partition {part} of {source}; row numbers in the message "
                "count from the start of that partition)"
            )
        found = info["counts"]
        counts += RowCounts(**{**found, "examples": tuple(found["examples"])})
    return counts


def spark_sql(spark: Any, sql: str, params: dict[str, Any] | None = None, **views: Any) -> Any:
    """Spark SQL written for DuckDB (``$name`` parameters, tables named by ``views``) over the
    given Spark DataFrames; the result as a Spark DataFrame.

    Each DataFrame is registered as a temporary view of its own (``clv_<name>_<id>``) and the
    SQL's table names point there, so that queries running at once on two threads (the churn
    trainings beside the main line) cannot see each other's tables.
    """
    text = re.sub(r"\$([A-Za-z_]\w*)", r":\1", sql)
    for name, frame in views.items():
        view = f"clv_{name}_{uuid.uuid4().hex[:12]}"
        frame.createOrReplaceTempView(view)
        text = re.sub(rf"\b{re.escape(name)}\b", view, text)
    return spark.sql(text, args=dict(params or {}))


@dataclass(frozen=True, eq=False)
class SparkCompact(Compact):
    """A compact log held by Spark: ``frame`` is a Spark DataFrame of ``customer_id`` (int
    codes), ``day`` and ``amount``; ``ids`` (on the driver) the sorted text ids. The SQL of
    the feature builders runs on the cluster (:meth:`run`); only their per-customer results
    come back."""

    spark: Any = None

    def run(
        self, sql: str, params: dict[str, Any] | None = None, gaps: bool = False
    ) -> pd.DataFrame:
        """Run a feature builder's SQL over the log as table ``tx`` on Spark, in one job (the
        cluster holds the aggregates; the log is not ``ordered``, so ``gaps`` adds nothing and
        a per-customer query comes back whole)."""
        return spark_sql(self.spark, sql, params, tx=self.frame).toPandas()

    @staticmethod
    def month(day: str) -> str:
        """SQL of the first day of the month of the day number ``day`` (a DATE)."""
        return f"trunc(date_add(DATE '1970-01-01', {day}), 'MM')"

    def to_frame(self) -> pd.DataFrame:
        """The readable table, collected to the driver."""
        return self.collect().to_frame()

    def collect(self) -> Compact:
        """The same log as a local :class:`Compact` on the driver (about 16 bytes a row)."""
        return self._local(self.frame)

    def head(self, n: int) -> Compact:
        """The first ``n`` customers' rows, on the driver."""
        return self._local(self.frame.where(f"{CUSTOMER} < {int(n)}"))

    def of_customers(self, customers: pd.Series) -> Compact:
        """These customers' rows (a churn window's training sample), on the driver."""
        codes = pd.DataFrame({CUSTOMER: self.codes_of(customers).astype(np.int64)})
        wanted = self.spark.createDataFrame(codes)
        return self._local(self.frame.join(wanted, on=CUSTOMER, how="left_semi"))

    def _local(self, rows: Any) -> Compact:
        table = rows.orderBy(CUSTOMER, DAY).toArrow()
        local = pd.DataFrame(
            {
                CUSTOMER: table.column(CUSTOMER).to_numpy().astype(np.int32),
                DAY: table.column(DAY).to_numpy().astype(np.int32),
            }
        )
        if self.has_amounts:
            local[AMOUNT] = table.column(AMOUNT).to_numpy()
        return from_codes(local, self.ids)

    def digest(self) -> str:
        """The log's SHA-256 as :meth:`Compact.digest` makes it: each block of customers is
        hashed on an executor; only the block digests come back."""
        import hashlib

        from pyspark.sql import functions

        has_amounts = self.has_amounts

        def hash_block(key: tuple[int], rows: pd.DataFrame) -> pd.DataFrame:
            rows = rows.sort_values([CUSTOMER, DAY])
            amounts = rows[AMOUNT].to_numpy() if has_amounts else None
            found = block_digest(rows[CUSTOMER].to_numpy(), rows[DAY].to_numpy(), amounts)
            return pd.DataFrame({"block": [int(key[0])], "digest": [found]})

        block = functions.floor(functions.col(CUSTOMER) / DIGEST_CUSTOMERS).cast("long")
        found = (
            self.frame.withColumn("block", block)
            .groupBy("block")
            .applyInPandas(hash_block, "block long, digest string")
            .orderBy("block")
            .collect()
        )
        digest = hashlib.sha256(ids_digest(self.ids).encode())
        for row in found:
            digest.update(row["digest"].encode())
        return digest.hexdigest()


def from_codes(frame: pd.DataFrame, ids: Any) -> Compact:
    """A local compact log of coded rows ordered by customer and day."""
    amounts = frame[AMOUNT].to_numpy() if AMOUNT in frame else None
    return assemble(frame[CUSTOMER].to_numpy(), ids, True, frame[DAY].to_numpy(), amounts)


def clean_spark(
    spark: Any, source: str, config: DataConfig, as_of: pd.Timestamp | None = None
) -> TransactionLog:
    """Read and clean a log on Spark (module docstring): same rules, counts and report as
    :func:`clv.data.clean.load_transactions`; the log's rows stay on the cluster
    (:class:`SparkCompact`).

    Raises
    ------
    DataValidationError
        As the local engine does, naming the partition where a row-wise rule stopped.
    """
    from pyspark.storagelevel import StorageLevel

    raw, config = read_source(spark, source, config)
    raw, instants = _dates_as_timestamps(raw, config.date_col)
    cores = spark.sparkContext.defaultParallelism
    if raw.rdd.getNumPartitions() < cores:  # e.g. one small file: use every core
        raw = raw.repartition(cores)
    batch = "spark.sql.execution.arrow.maxRecordsPerBatch"
    before = spark.conf.get(batch)
    spark.conf.set(batch, str(BATCH_ROWS))  # the session's own value is put back below
    screened = raw.mapInPandas(_screen(config, as_of, instants), _SCREENED).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    try:
        infos = screened.where("info IS NOT NULL").select("part", "info").collect()
        counts = _counts([(row["part"], row["info"]) for row in infos], source)
        if counts.rows_read == 0:
            raise DataValidationError(EMPTY_LOG)
        require_used(counts)
        has_amounts = config.amount_col is not None
        rows = screened.where("info IS NULL").select(
            CUSTOMER, DATE, *([AMOUNT] if has_amounts else [])
        )
        bulk = BulkSql(
            lambda sql: spark_sql(spark, sql, tx=rows).toPandas(),
            date_quantile=f"percentile_disc({{q}}) WITHIN GROUP "
            f"(ORDER BY unix_date(CAST({DATE} AS DATE)))",
        )
        keep, rule, counts = screen_bulk(bulk, counts, config)
        compact = _merge(spark, rows, keep, has_amounts)
        report = _report(compact, counts, config, rule)  # caches the log: screened is done
    finally:
        screened.unpersist()
        spark.conf.set(batch, before)
    return TransactionLog(compact, report)


def _merge(spark: Any, rows: Any, keep: str, has_amounts: bool) -> SparkCompact:
    """Merge same-day purchases and code the customers: a customer's code is her id's position
    among the sorted ids (Spark orders text by its UTF-8 bytes, as Arrow and DuckDB do)."""
    from pyspark.storagelevel import StorageLevel

    amount = f", SUM({AMOUNT}) AS {AMOUNT}" if has_amounts else ""
    daily = spark_sql(
        spark,
        f"SELECT {CUSTOMER}, unix_date(CAST({DATE} AS DATE)) AS {DAY}{amount} "
        f"FROM tx WHERE {keep} GROUP BY {CUSTOMER}, {DAY}",
        tx=rows,
    ).persist(StorageLevel.MEMORY_AND_DISK)
    codes = spark_sql(
        spark,
        f"SELECT {CUSTOMER}, CAST(row_number() OVER (ORDER BY {CUSTOMER}) - 1 AS INT) AS code "
        f"FROM (SELECT DISTINCT {CUSTOMER} FROM daily) AS d",
        daily=daily,
    ).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        ids = codes.orderBy("code").select(CUSTOMER).toArrow().column(CUSTOMER)
        value = f", d.{AMOUNT}" if has_amounts else ""
        coded = spark_sql(
            spark,
            f"SELECT c.code AS {CUSTOMER}, d.{DAY}{value} FROM daily d JOIN codes c "
            f"ON d.{CUSTOMER} = c.{CUSTOMER}",
            daily=daily,
            codes=codes,
        ).persist(StorageLevel.MEMORY_AND_DISK)
        coded.count()  # cached before its inputs are let go
    finally:
        daily.unpersist()
        codes.unpersist()
    return SparkCompact(coded, ids.combine_chunks().cast(pa.large_string()), False, spark)


def _report(
    compact: SparkCompact, counts: RowCounts, config: DataConfig, rule: str
) -> CleaningReport:
    """The cleaning report, from the counts and one pass over the merged log."""
    row = spark_sql(
        compact.spark,
        f"SELECT COUNT(*) AS n, MIN({DAY}) AS lo, MAX({DAY}) AS hi FROM tx",
        tx=compact.frame,
    ).collect()[0]
    return cleaning_report(
        counts, config, rule, int(row["n"]), len(compact.ids), int(row["lo"]), int(row["hi"])
    )
