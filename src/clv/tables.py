"""Reading and writing tables, and putting files and folders in place safely.

Tables are CSV (or TSV/TXT, optionally ``.gz``/``.zst``/``.bz2`` compressed; the delimiter is
detected) or Parquet, chosen by the file's suffix.

Writes are atomic and durable: a file goes to a hidden temporary file beside the destination,
is flushed to disk and renamed over it; a folder is written beside its destination and swapped
in as a whole (:func:`replace_dir`). An interrupted run never leaves a partial file, and the
leftovers of a killed one (named with its pid) are removed by the next run that writes there.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from clv import resources
from clv.errors import DataValidationError, MemoryLimitError
from clv.jsonio import dumps

#: DuckDB's memory per connection unless ``CLV_DUCKDB_MEMORY_LIMIT`` says otherwise: beside
#: the process's own arrays (about 2 GB for a compact log of 100M rows) `clv score` stays under
#: 4 GB; the same-day merge's sort of 100M rows spills under it no slower than under 4 GB.
DEFAULT_MEMORY_LIMIT = "2GB"


def duckdb_settings() -> dict[str, Any]:
    """DuckDB's threads (:func:`clv.resources.threads`), memory limit and spill folder for
    clv's queries.

    ``CLV_DUCKDB_MEMORY_LIMIT`` (default ``2GB``; DuckDB's own default would be 80 % of the
    machine's memory) caps what a query's hash tables and sorts hold before they spill to a
    folder per connection under ``CLV_DUCKDB_TEMP_DIRECTORY`` (default
    ``<system temp>/clv-duckdb``, never the working folder), removed when the connection ends.
    """
    return {
        "threads": resources.threads(),
        "memory_limit": os.environ.get("CLV_DUCKDB_MEMORY_LIMIT", DEFAULT_MEMORY_LIMIT),
        "temp_directory": os.environ.get(
            "CLV_DUCKDB_TEMP_DIRECTORY", str(Path(tempfile.gettempdir()) / "clv-duckdb")
        ),
    }


@contextmanager
def connection(**tables: pd.DataFrame | Path) -> Iterator[Any]:
    """A DuckDB connection (:func:`duckdb_settings`) with frames and Parquet files as tables,
    for work that runs several queries on the same tables."""
    import duckdb

    settings = duckdb_settings()
    base = Path(settings["temp_directory"])
    # a folder per connection, removed on the way out even when DuckDB is interrupted (and by
    # a later connection when its process was killed)
    with (
        private_temp_dir("query", base) as spill,
        duckdb.connect(config={**settings, "temp_directory": spill}) as con,
    ):
        for name, table in tables.items():
            if isinstance(table, pd.DataFrame):
                con.register(name, table)
            else:
                con.register(name, con.read_parquet(str(table)))
        try:
            yield con
        except duckdb.OutOfMemoryException as exc:
            reason = str(exc).splitlines()[0]
            raise MemoryLimitError(
                f"DuckDB needed more memory than its limit of {settings['memory_limit']} "
                f"(CLV_DUCKDB_MEMORY_LIMIT) for work it cannot spill to disk ({reason}). Set "
                f"CLV_DUCKDB_MEMORY_LIMIT higher (the default is {DEFAULT_MEMORY_LIMIT}), or give "
                "the process fewer threads (--threads)."
            ) from None


def query(
    sql: str, params: dict[str, Any] | None = None, **tables: pd.DataFrame | Path
) -> pd.DataFrame:
    """Run DuckDB SQL over pandas frames (or Parquet files: a path or glob) under the given names.

    The result comes through Arrow, which at a million rows of string ids takes about two thirds
    of the time of DuckDB's own ``.df()``. Memory: :func:`duckdb_settings`.
    """
    return query_arrow(sql, params, **tables).to_pandas()


def query_arrow(
    sql: str, params: dict[str, Any] | None = None, **tables: pd.DataFrame | Path
) -> Any:
    """Like :func:`query`, but the result stays an Arrow table."""
    with connection(**tables) as con:
        return con.sql(sql, params=params).to_arrow_table()


def arrow_batches(relation: Any, rows: int) -> Any:
    """A DuckDB relation's result as an Arrow record-batch reader of ``rows`` rows a batch
    (``to_arrow_reader`` since DuckDB 1.4, which deprecates the older ``fetch_record_batch``)."""
    reader = getattr(relation, "to_arrow_reader", None)
    return reader(rows) if reader is not None else relation.fetch_record_batch(rows)


def copy_to_parquet(con: Any, sql: str, out: Path) -> Path:
    """Write the result of ``sql`` on the DuckDB connection ``con`` (:func:`connection`) to the
    Parquet file ``out``, streaming (sorts and aggregations spill to disk under the memory
    limit), so that DuckDB's memory can be released before the result is read back."""
    target = str(out).replace("'", "''")
    con.execute(f"COPY ({sql}) TO '{target}' (FORMAT parquet)")
    return out


#: Text-table suffixes, each optionally compressed (``orders.csv.gz``, ``orders.tsv.zst``).
TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
#: Compression suffixes of text tables (zstd needs the ``zstandard`` package, a dependency).
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".bz2": "bz2"}
PARQUET_SUFFIXES = (".parquet", ".pq")


def _kind(path: Path) -> tuple[str, str | None]:
    """``("csv", compression or None)`` or ``("parquet", None)`` from the file's suffixes."""
    suffixes = [s.lower() for s in path.suffixes[-2:]]
    compression = COMPRESSIONS.get(suffixes[-1]) if suffixes else None
    base = suffixes[-2] if compression and len(suffixes) == 2 else (suffixes or [""])[-1]
    if base in TEXT_SUFFIXES:
        return "csv", compression
    if base in PARQUET_SUFFIXES and compression is None:
        return "parquet", None
    found = "".join(path.suffixes[-2:]) or "(none)"
    raise DataValidationError(
        f"{path}: unsupported file type {found!r}; use .csv (or .tsv/.txt, optionally "
        ".gz/.zst/.bz2 compressed) or .parquet."
    )


def is_parquet(path: str | Path) -> bool:
    """Whether ``path`` names a Parquet file by its suffix."""
    return Path(path).suffix.lower() in PARQUET_SUFFIXES


def sniff_delimiter(path: str | Path) -> str:
    """The field delimiter of a (possibly compressed) text table, found by DuckDB's CSV sniffer
    (``,``, ``;``, tab, ``|`` …); ``,`` when the file has a single column."""
    import duckdb

    target = str(path).replace("'", "''")
    try:
        with duckdb.connect() as con:
            found = con.execute(f"SELECT Delimiter FROM sniff_csv('{target}')").fetchone()
    except duckdb.Error as exc:
        raise DataValidationError(
            f"{path} could not be read as a delimited text table: {exc}. Name the delimiter "
            "with --delimiter."
        ) from None
    delimiter = found[0] if found else ","
    return delimiter if len(delimiter) == 1 else ","


def read_table(
    path: str | Path, string_columns: tuple[str, ...] = (), delimiter: str | None = None
) -> pd.DataFrame:
    """Read a CSV (or TSV/TXT, optionally ``.gz``/``.zst``/``.bz2`` compressed) or Parquet file.

    Parameters
    ----------
    path : str or Path
        File ending in ``.csv``, ``.csv.gz``, ``.csv.zst``, ``.tsv``… or ``.parquet``.
    string_columns : tuple of str
        Columns to read as text (identifiers keep leading zeros; dates are parsed later).
    delimiter : str, optional
        Field delimiter of a text table; by default detected (:func:`sniff_delimiter`).

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    DataValidationError
        If the file does not exist, has another suffix, or cannot be parsed.
    """
    path = Path(path)
    kind, compression = _kind(path)
    if not path.is_file():
        raise DataValidationError(f"{path} does not exist.")
    try:
        if kind == "csv":
            sep = delimiter or sniff_delimiter(path)
            options: dict[str, Any] = {"sep": sep, "compression": compression}
            header = pd.read_csv(path, nrows=0, **options).columns
            dtype = {c: "str" for c in string_columns if c in header}
            return pd.read_csv(path, dtype=dtype, **options)
        return pd.read_parquet(path)
    except (ValueError, OSError, EOFError, ImportError) as exc:
        raise DataValidationError(f"{path} could not be read as {kind}: {exc}") from None


@contextmanager
def private_temp_dir(prefix: str, base: str | Path | None = None) -> Iterator[str]:
    """A temporary folder ``<prefix>-<pid>-…`` under ``base`` (the system's temp folder by
    default), removed on the way out; folders that killed processes left under the same prefix
    are removed first."""
    base = Path(base or tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(rf"^{re.escape(prefix)}-(\d+)-")
    for entry in base.iterdir():
        match = pattern.match(entry.name)
        if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=f"{prefix}-{os.getpid()}-", dir=base) as folder:
        yield folder


def _umask(folder: Path) -> int:
    """The process's umask, read without changing it: from ``/proc`` (Linux), else from the
    mode a new file in ``folder`` gets (``os.umask`` would change it process-wide)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    probe = folder / f".umask-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        return 0o666 & ~stat.S_IMODE(probe.stat().st_mode)
    finally:
        probe.unlink()


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def leftover_name(path: Path, tag: str) -> Path:
    """A hidden sibling of ``path`` for temporary work, tagged with this process's id so that a
    later run can tell the leftovers of a killed process (:func:`remove_leftovers`)."""
    return path.with_name(f".{path.name}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_leftovers(path: Path) -> list[Path]:
    """Remove the temporary siblings of ``path`` (:func:`leftover_name`) whose process is gone.

    A process killed without warning (SIGKILL, power loss, the OOM killer) cannot clean up; the
    next clv run that writes ``path`` calls this. Returns what was removed.
    """
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.[a-z]+-(\d+)-[0-9a-f]{{8}}(\.tmp)?$")
    removed = []
    if not path.parent.is_dir():
        return removed
    for entry in path.parent.iterdir():
        match = pattern.match(entry.name)
        if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; flushed to disk and renamed over it on success,
    deleted otherwise. Leftovers of killed runs writing ``path`` are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    tmp = Path(str(leftover_name(path, "writing")) + ".tmp")
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask(path.parent))  # what a plain open() would give
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(text: str, path: str | Path) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(data: Any, path: str | Path) -> Path:
    """Write ``data`` as indented, strict JSON to ``path`` atomically (non-finite numbers as
    ``null``: :func:`clv.jsonio.dumps`)."""
    return write_text(dumps(data), path)


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` to ``path`` atomically (temporary file, flushed, then renamed).

    Parameters
    ----------
    frame : pandas.DataFrame
        The table; its index is not written.
    path : str or Path
        Destination ending in ``.csv`` (optionally ``.gz``/``.zst``/``.bz2``) or ``.parquet``;
        parent folders are created.

    Returns
    -------
    Path
        The destination.
    """
    path = Path(path)
    kind, compression = _kind(path)
    with atomic_path(path) as tmp:
        if kind == "csv":
            sep = "\t" if path.name.lower().split(".")[-2 if compression else -1] == "tsv" else ","
            frame.to_csv(tmp, index=False, sep=sep, compression=compression)
        else:
            frame.to_parquet(tmp, index=False)
    return path


def sync_tree(folder: str | Path) -> None:
    """Flush every file of ``folder`` (and the folder's entries) to the disk."""
    folder = Path(folder)
    for entry in folder.rglob("*"):
        if entry.is_file():
            _fsync(entry)
    _fsync(folder)


def _exchange(source: Path, target: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    system or the file system cannot."""
    import ctypes
    import ctypes.util

    if not hasattr(os, "sched_getaffinity"):  # not Linux
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    done = renameat2(at_fdcwd, os.fsencode(source), at_fdcwd, os.fsencode(target), rename_exchange)
    return done == 0


def replace_dir(source: str | Path, target: str | Path) -> None:
    """Put the folder ``source`` in the place of ``target`` (a sibling), replacing it as a whole.

    Both are swapped in one step where the system can (Linux), so ``target`` always names the
    old folder or the new one; elsewhere the old folder is renamed aside first (a kill between
    the two renames leaves it as ``.<name>.old-<pid>-…``, which the next write puts back).
    The old folder is removed afterwards.
    """
    source, target = Path(source), Path(target)
    sync_tree(source)
    if target.exists() and _exchange(source, target):
        shutil.rmtree(source, ignore_errors=True)  # now the old folder
    else:
        old = leftover_name(target, "old") if target.exists() else None
        if old is not None:
            os.replace(target, old)
        os.replace(source, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    _fsync(target.parent)


def restore_interrupted(target: Path) -> Path | None:
    """Put back a folder that a killed :func:`replace_dir` (the two-rename fallback) left aside;
    returns it, or None when there was nothing to restore."""
    if target.exists():
        return None
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.old-(\d+)-[0-9a-f]{{8}}$")
    for entry in sorted(target.parent.iterdir()) if target.parent.is_dir() else []:
        match = pattern.match(entry.name)
        if match and not _alive(int(match.group(1))):
            os.replace(entry, target)
            return target
    return None
