"""Where clv may write: output paths checked before any work, so a user's file is never lost.

Two kinds of output, two rules:

- **A folder clv replaces as a whole** (a model bundle, a Spark score folder; see
  :func:`clv.tables.replace_dir`): only a folder that does not exist, is empty, or is clv's own
  kind (a bundle whose manifest says so and holds nothing else; Spark's part files) may be
  replaced. ``/``, the home folder, the working folder and every folder above it, and a folder
  that holds one of the run's inputs (the log, the config, a customer list, …) are refused by
  name, whatever they hold.
- **A file clv writes** (scores, a scorecard, a report's files): never one of the run's inputs,
  compared by resolved path and by inode, so ``./log.csv``, ``../here/log.csv`` and a symlink
  to the log all count.

Every command calls these before it reads the log, not after minutes of fitting; the writers that
replace folders call :func:`check_replaceable_folder` again at the moment they do, for callers of
the Python API.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from clv.errors import ClvError


class OutputPathError(ClvError, ValueError):
    """An output path that would overwrite or remove something clv did not make."""


#: Files of a Spark Parquet output folder (and its checksum files).
_SPARK_PART = re.compile(r"^\.?(part-.*|_SUCCESS|_committed_.*|_started_.*)(\.crc)?$")


def input_paths(config: Any, config_file: str | Path | None = None) -> list[Path]:
    """The files a run reads, as far as they are local files: the log, the surveys, the
    customer lists, the cost table and the config file itself (URIs and the embedded data sets
    are not files, and are left out)."""
    sources = [
        config.data.transactions,
        config.data.surveys,
        config.train.customers,
        config.score.customers,
        config.kpis.costs,
        config.kpis.customers,
        config_file,
    ]
    return [Path(s) for s in sources if s and "://" not in str(s) and Path(s).exists()]


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: same resolved path, or same device and inode."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def check_not_input(outputs: Iterable[str | Path], inputs: Iterable[Path], option: str) -> None:
    """Refuse an output file that is one of the run's inputs.

    Raises
    ------
    OutputPathError
        Naming the output, the input it is, and what to do.
    """
    inputs = list(inputs)
    for out in outputs:
        out = Path(out)
        for source in inputs:
            if same_file(out, source):
                raise OutputPathError(
                    f"{option} {out} is the same file as the input {source}: writing it would "
                    "destroy the input. Choose another output path."
                )


def not_of_spark(folder: Path) -> list[str]:
    """The entries of ``folder`` that are not Spark's Parquet part files (what
    ``--engine spark`` writes)."""
    return sorted(p.name for p in folder.iterdir() if not _SPARK_PART.match(p.name))


def check_replaceable_folder(
    folder: str | Path,
    foreign: Callable[[Path], list[str]],
    kind: str,
    inputs: Iterable[Path] = (),
    option: str = "--model-dir",
) -> None:
    """Refuse a folder that clv would replace as a whole unless it is new, empty, or of clv's kind.

    Parameters
    ----------
    folder : str or Path
        The folder about to be replaced.
    foreign : callable
        The entries of an existing folder that are not of clv's kind
        (:func:`clv.bundle.not_of_a_bundle`, :func:`not_of_spark`).
    kind : str
        That kind, in words ("a clv model bundle").
    inputs : iterable of Path
        The run's input files (:func:`input_paths`): a folder holding one is refused.
    option : str
        The option or key that named the folder, for the message.

    Raises
    ------
    OutputPathError
        Naming the folder, why it is refused, and what to choose instead.
    """
    given = Path(folder)
    path = given.resolve()
    cwd = Path.cwd().resolve()
    way_out = f"Choose an empty or new folder, or {kind} folder, for {option}."
    named = {
        Path(path.anchor): "the root of the file system",
        Path.home().resolve(): "your home folder",
        cwd: "the working folder",
    }
    if str(given) in (".", "..") or path in named or path in cwd.parents:
        what = named.get(path, "a folder that holds the working folder")
        raise OutputPathError(
            f"{option} {given} is {what}; clv replaces that folder as a whole and would remove "
            f"everything in it. {way_out}"
        )
    for source in inputs:
        if path in source.resolve().parents:
            raise OutputPathError(
                f"{option} {given} holds the input {source}; clv replaces that folder as a whole "
                f"and would remove it. {way_out}"
            )
    if given.is_symlink() or (path.exists() and not path.is_dir()):
        what = "a symbolic link" if given.is_symlink() else "a file"
        raise OutputPathError(f"{option} {given} is {what}, not a folder clv made. {way_out}")
    if not path.is_dir():
        return
    entries = foreign(path)
    if entries:
        shown = ", ".join(entries[:5]) + (
            f" and {len(entries) - 5:,} more" if len(entries) > 5 else ""
        )
        raise OutputPathError(
            f"{option} {given} already holds files that are not {kind} ({shown}); clv replaces "
            f"that folder as a whole and would remove them. {way_out}"
        )
