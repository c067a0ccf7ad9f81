"""PostgreSQL as a source of transaction logs and a sink of scores, through ADBC.

Reading: ``--transactions postgresql://user@host:port/db`` with ``--table`` (``schema.table``)
or ``--query``; the mapped columns arrive as Arrow record batches (libpq's binary COPY in the
driver, no row-by-row Python) and are cleaned in chunks like a Parquet log.

Writing: :func:`write_scores` loads the scores into a staging table and puts it in place in the
same transaction, so a reader sees the old table or the new one, never part of either, and a
run killed at any moment leaves the old table (PostgreSQL rolls the transaction back).

Credentials: a password in the URI is refused (it would sit in shell histories, the config,
MLflow and the bundle); libpq takes it from ``$PGPASSWORD`` or ``~/.pgpass``. Every URI clv
echoes goes through :func:`clv.uris.redact` as well.

Why ADBC and not DuckDB's ``postgres`` extension: DuckDB installs extensions by downloading
them at run time, and clv makes no network calls of its own; the ADBC driver is a wheel,
installed like any other dependency (``pip install 'clv[postgres]'``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, get_args

import pandas as pd

from clv.errors import DatabaseError, DataValidationError
from clv.uris import has_secret, redact

#: What ``--if-exists`` does when the output table exists.
IfExists = Literal["replace", "append", "fail"]


def quote_identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier; ``schema.table`` quotes each part.

    >>> quote_identifier('sales.Orders')
    '"sales"."Orders"'
    >>> quote_identifier('we"ird')
    '"we""ird"'
    """
    parts = name.split(".")
    if not name or any(not p for p in parts) or len(parts) > 2:
        raise DataValidationError(f"{name!r} is not a table name: give 'table' or 'schema.table'.")
    return ".".join(quote_name(p) for p in parts)


def relation(table: str | None, query: str | None) -> str:
    """The SQL relation to read: the quoted ``table``, or ``query`` as a subquery."""
    if (table is None) == (query is None):
        raise DataValidationError(
            "A PostgreSQL log needs exactly one of --table (a table or view) and --query "
            "(a SELECT); got " + ("both." if table else "neither.")
        )
    if table is not None:
        return quote_identifier(table)
    text = query.strip().rstrip(";")
    return f"({text}) AS clv_source"


def check_uri(uri: str) -> None:
    """Refuse a URI that carries a password: it belongs in ``$PGPASSWORD`` or ``~/.pgpass``."""
    if has_secret(uri):
        raise DataValidationError(
            f"The PostgreSQL URI {redact(uri)} contains a password. Remove it from the URI and "
            "set PGPASSWORD or add the server to ~/.pgpass (clv echoes URIs into its output, "
            "MLflow and the model bundle)."
        )


@contextmanager
def connect(uri: str) -> Iterator[Any]:
    """An ADBC DB-API connection to ``uri`` (autocommit off); closed on exit.

    Raises
    ------
    DatabaseError
        When the driver is not installed or the server cannot be reached or refuses the login
        (the message names the server without credentials).
    """
    check_uri(uri)
    try:
        import adbc_driver_postgresql.dbapi as dbapi
    except ImportError:
        raise DatabaseError(
            "Reading from or writing to PostgreSQL needs the ADBC driver: "
            "pip install 'clv[postgres]' (adbc-driver-postgresql)."
        ) from None
    try:
        conn = dbapi.connect(uri)
    except Exception as exc:  # the driver's errors carry libpq's message
        raise DatabaseError(f"Could not connect to {redact(uri)}: {_reason(exc)}") from None
    try:
        yield conn
    finally:
        conn.close()


def _reason(exc: BaseException) -> str:
    """The first line of a driver error (libpq's message)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass(frozen=True)
class PostgresLog:
    """A transaction log in a PostgreSQL table or query result.

    Parameters
    ----------
    uri : str
        ``postgresql://user@host:port/db`` (no password).
    table, query : str, optional
        Exactly one: a table or view (``schema.table``), or a SELECT.
    """

    uri: str
    table: str | None = None
    query: str | None = None

    @property
    def name(self) -> str:
        """What error messages call the log: the table, or "the query"."""
        return f"table {self.table}" if self.table else "the query"

    def columns(self) -> list[str]:
        """The relation's column names."""
        sql = f"SELECT * FROM {relation(self.table, self.query)} LIMIT 0"
        with connect(self.uri) as conn, self._reading(conn) as cur:
            cur.execute(sql)
            return list(cur.fetch_arrow_table().schema.names)

    def count(self) -> int:
        """Rows in the relation."""
        with connect(self.uri) as conn, self._reading(conn) as cur:
            cur.execute(f"SELECT count(*) FROM {relation(self.table, self.query)}")
            return int(cur.fetchone()[0])

    def chunks(self, columns: list[str], chunk_rows: int) -> Iterator[pd.DataFrame]:
        """The ``columns`` of every row, ``chunk_rows`` at a time, as pandas frames (dates as
        datetime64, numerics as numbers or their text, which cleaning parses)."""
        import pyarrow as pa

        select = ", ".join(quote_name(c) for c in columns)
        sql = f"SELECT {select} FROM {relation(self.table, self.query)}"
        with connect(self.uri) as conn, self._reading(conn) as cur:
            cur.execute(sql)
            reader = cur.fetch_record_batch()
            pending: list[Any] = []
            rows = 0
            for batch in reader:
                pending.append(batch)
                rows += batch.num_rows
                while rows >= chunk_rows:
                    table = pa.Table.from_batches(pending, reader.schema)
                    yield _frame(table.slice(0, chunk_rows))
                    rest = table.slice(chunk_rows)
                    pending, rows = rest.to_batches(), rest.num_rows
            if rows:
                yield _frame(pa.Table.from_batches(pending, reader.schema))

    @contextmanager
    def _reading(self, conn: Any) -> Iterator[Any]:
        """A cursor whose errors name the log and the server (without credentials)."""
        cur = conn.cursor()
        try:
            yield cur
        except (DatabaseError, DataValidationError):
            raise
        except Exception as exc:
            if type(exc).__module__.startswith("adbc_driver"):
                raise DatabaseError(
                    f"Reading {self.name} from {redact(self.uri)} failed: {_reason(exc)}"
                ) from None
            raise
        finally:
            cur.close()


def quote_name(name: str) -> str:
    """One name (a column, or a table without its schema) quoted whole, dots and all."""
    return '"' + name.replace('"', '""') + '"'


def _frame(table: Any) -> pd.DataFrame:
    """An Arrow table from the driver as pandas: PostgreSQL ``numeric`` (an opaque text type
    in Arrow) as its text, dates as datetime64."""
    import pyarrow as pa

    columns = []
    for column in table.columns:
        if isinstance(column.type, pa.ExtensionType):
            column = pa.chunked_array(
                [chunk.storage for chunk in column.chunks], column.type.storage_type
            )
        columns.append(column)
    plain = pa.Table.from_arrays(columns, names=table.column_names)
    return plain.to_pandas(date_as_object=False)


def write_scores(
    scores: pd.DataFrame,
    uri: str,
    table: str,
    if_exists: IfExists = "replace",
    as_of: str = "",
    model_version: str = "",
) -> int:
    """Write ``scores`` to ``table`` in one transaction; return the rows written.

    The rows go into a staging table created in the same transaction, which then replaces the
    target (``replace``: the old table is dropped and the staging table renamed), is appended
    to it (``append``: the target is created on the first run), or becomes it only if there is
    no target yet (``fail``). Readers of the target see the old rows or the new ones; a run
    that dies leaves the old table as it was. Every row carries ``as_of`` (the scores' date)
    and ``model_version`` (which model scored them).

    Raises
    ------
    DatabaseError
        When the target exists under ``fail``, its columns differ under ``append``, or the
        server refuses (the message names the server without credentials).
    """
    import pyarrow as pa

    if if_exists not in get_args(IfExists):
        raise DataValidationError(
            f"--if-exists must be replace, append or fail; got {if_exists!r}."
        )
    target = quote_identifier(table)
    schema, _, name = table.rpartition(".")
    staging_name = f"clv_staging_{os.getpid()}_{secrets.token_hex(4)}"
    staging = quote_identifier(f"{schema}.{staging_name}" if schema else staging_name)
    stamped = scores.assign(as_of=as_of, model_version=model_version)
    data = pa.Table.from_pandas(stamped, preserve_index=False)
    with connect(uri) as conn:
        cur = conn.cursor()
        try:
            exists = _exists(cur, table)
            if exists and if_exists == "fail":
                raise DatabaseError(
                    f"Table {table} exists in {redact(uri)} and --if-exists is fail: choose "
                    "replace (swap in the new scores) or append (add them with their as_of)."
                )
            cur.adbc_ingest(staging_name, data, mode="create", db_schema_name=schema or None)
            if exists and if_exists == "append":
                _check_same_columns(cur, table, list(stamped.columns))
                cols = ", ".join(quote_name(c) for c in stamped.columns)
                cur.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {staging}")
                cur.execute(f"DROP TABLE {staging}")
            else:
                if exists:
                    cur.execute(f"DROP TABLE {target}")
                cur.execute(f"ALTER TABLE {staging} RENAME TO {quote_name(name)}")
            conn.commit()
        except DatabaseError:
            conn.rollback()
            raise
        except Exception as exc:
            conn.rollback()
            if type(exc).__module__.startswith("adbc_driver"):
                raise DatabaseError(
                    f"Writing the scores to {table} in {redact(uri)} failed (nothing was "
                    f"changed): {_reason(exc)}"
                ) from None
            raise
        finally:
            cur.close()
    return len(stamped)


def _exists(cur: Any, table: str) -> bool:
    """Whether ``table`` (as the search path resolves it) exists."""
    cur.execute("SELECT to_regclass($1) IS NOT NULL", parameters=(quote_identifier(table),))
    return bool(cur.fetchone()[0])


def _check_same_columns(cur: Any, table: str, columns: list[str]) -> None:
    """Appending needs the target to have the scores' columns."""
    cur.execute(f"SELECT * FROM {quote_identifier(table)} LIMIT 0")
    present = list(cur.fetch_arrow_table().schema.names)
    missing = [c for c in columns if c not in present]
    if missing:
        raise DatabaseError(
            f"Cannot append to {table}: it has no column(s) {', '.join(missing)} (it was made "
            "by other options or another clv). Write to a new table, or use --if-exists replace."
        )
