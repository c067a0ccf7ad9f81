"""Locks that keep two clv runs from writing the same model folder at once.

A lock is an advisory ``flock`` on a hidden sibling file ``.<folder>.lock`` holding the
holder's pid, command and start time, so that a second run can say who holds it. The kernel
releases it when the holder ends in any way (SIGKILL and power loss included): a lock is never
left stale. The holder removes the file when it lets go.

Locks are re-entrant within a process (the CLI takes the lock before reading the log, and
:func:`clv.training.train` takes it again for Python callers).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clv.errors import ClvError
from clv.jsonio import read_json


class LockedError(ClvError, RuntimeError):
    """Another process holds the lock of a folder clv is about to write."""


#: Locks this process holds: path → (open lock file, depth).
_held: dict[Path, tuple[int, int]] = {}


def lock_path(folder: str | Path) -> Path:
    """The lock file of ``folder`` (and of its ``-v<N>`` challenger folders)."""
    folder = Path(folder).absolute()
    return folder.with_name(f".{folder.name}.lock")


def _holder(path: Path, patience: float = 2.0) -> str:
    """Who holds the lock of ``path``, as its file says.

    A holder writes its pid just after taking the lock, so a run that finds the lock taken
    may read the file in between: it reads again for up to ``patience`` seconds before it
    settles for "another process".
    """
    deadline = time.monotonic() + patience
    while True:
        try:
            info = read_json(path, LockedError)
        except LockedError:  # removed, half-written (empty), or damaged
            info = {}
        if info or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if not info:
        return "another process"
    return f"pid {info.get('pid')} (`{info.get('command', '?')}`, since {info.get('since', '?')})"


def _try_lock(path: Path) -> int | None:
    """An open descriptor of ``path`` holding its exclusive lock, or None when it is held."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:  # the holder removed it as we opened it: try the new one
            same = False
        if same:
            return fd
        os.close(fd)


@contextmanager
def folder_lock(folder: str | Path, wait: float = 0.0, purpose: str = "") -> Iterator[Path]:
    """Hold the write lock of ``folder`` for the block.

    Parameters
    ----------
    folder : str or Path
        The folder about to be written (it need not exist).
    wait : float
        Seconds to wait for another holder to finish; 0 stops at once.
    purpose : str
        What this process does, shown to a run that finds the folder locked.

    Raises
    ------
    LockedError
        If another process holds the lock after ``wait`` seconds, naming it.
    """
    path = lock_path(folder)
    if path in _held:  # re-entrant
        fd, depth = _held[path]
        _held[path] = (fd, depth + 1)
        try:
            yield path
        finally:
            _held[path] = (fd, _held[path][1] - 1)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + max(wait, 0.0)
    fd = _try_lock(path)
    while fd is None and time.monotonic() < deadline:
        time.sleep(0.2)
        fd = _try_lock(path)
    if fd is None:
        raise LockedError(
            f"{Path(folder)} is being written by {_holder(path)}. Wait for that run to "
            "finish (or pass --wait SECONDS), or write another folder with --model-dir."
        )
    program = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "python"
    program = "clv" if program in ("clv", "cli") else program  # `clv …` or `python -m clv.cli …`
    command = " ".join([program, *sys.argv[1:]])
    command = re.sub(r"(://[^:/@\s]+:)[^@\s]+@", r"\1***@", command)  # no passwords in the file
    info = {
        "pid": os.getpid(),
        "command": f"{command}: {purpose}" if purpose else command,
        "since": dt.datetime.now().isoformat(timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(info).encode())
    _held[path] = (fd, 1)
    try:
        yield path
    finally:
        del _held[path]
        path.unlink(missing_ok=True)  # while still holding it: no one can take a removed file
        os.close(fd)
