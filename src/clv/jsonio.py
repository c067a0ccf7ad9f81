"""JSON as clv writes and reads it: strict on the way out, bounded on the way in.

Out: strict JSON (RFC 8259) only. A float that is not a number (NaN, ±inf: an NPS with no
answers, a rank correlation of a constant forecast, a deviance of a zero forecast) is written as
``null``, the one JSON value for "no number", never as the ``NaN`` / ``Infinity`` tokens Python
emits by default, which other readers (browsers, ``jq``, most languages) reject.

In: every JSON file clv reads (bundle manifests, lock files, reports) may be damaged or hostile,
so it is read with limits — its size, its nesting depth, then the type of the top level — and any
fault is a :class:`~clv.errors.ClvError` of the caller's choosing that names the file, never a
``RecursionError`` or a ``MemoryError`` traceback.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from clv.errors import ClvError

#: Largest JSON file clv reads (a bundle manifest of CDNOW is about 30 kB; a covariate model's
#: with hundreds of groups a few MB).
MAX_BYTES = 64 * 1024 * 1024
#: Deepest nesting of arrays and objects clv reads (its own files nest to about 8).
MAX_DEPTH = 64
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def strict(value: Any) -> Any:
    """``value`` with every non-finite float (and NumPy scalar) made JSON-safe: NaN and ±inf
    become ``None``; tuples become lists; mappings keep their keys as strings."""
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, dict):
        return {str(k): strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v) for v in value]
    return value


def dumps(data: Any, indent: int | None = 2) -> str:
    """Strict JSON text of ``data`` (:func:`strict`), with a final newline when indented."""
    text = json.dumps(strict(data), indent=indent, allow_nan=False)
    return text + "\n" if indent is not None else text


def nesting_depth(raw: bytes) -> int:
    """Deepest nesting of ``[`` / ``{`` in JSON text, brackets inside strings not counted."""
    bare = np.frombuffer(_STRING.sub(b'""', raw), dtype=np.uint8)
    steps = np.isin(bare, (ord("["), ord("{"))).astype(np.int64)
    steps -= np.isin(bare, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max(initial=0))


def read_json(
    path: str | Path,
    error: type[ClvError],
    advice: str = "",
    expect: type = dict,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """Read a JSON file within limits.

    Parameters
    ----------
    path : str or Path
        The file.
    error : type of ClvError
        Raised, naming the file, when it cannot be read as JSON of the expected kind.
    advice : str
        What to do, appended to the message (e.g. "Retrain the model.").
    expect : type
        The type the top level must have (``dict`` by default).
    max_bytes, max_depth : int
        Largest size and deepest nesting read.

    Returns
    -------
    The parsed value, of type ``expect``.

    Raises
    ------
    ClvError
        Of type ``error``: "<path> is damaged: …" for a file too large, nested too deep, not
        UTF-8 JSON, or of another top-level type. (The ``NaN`` tokens that clv before strict
        writing put in scorecards are still read.)
    """
    path = Path(path)
    tail = f" {advice}" if advice else ""

    def damaged(why: str) -> ClvError:
        return error(f"{path} is damaged: {why}.{tail}")

    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise damaged(f"{size:,} bytes, more than the {max_bytes:,} clv reads")
        raw = path.read_bytes()
    except OSError as exc:
        raise error(f"{path} could not be read: {exc.strerror or exc}.{tail}") from None
    depth = nesting_depth(raw)
    if depth > max_depth:
        raise damaged(f"nested {depth:,} levels deep, more than the {max_depth} clv reads")
    try:
        data = json.loads(raw.decode("utf-8"))  # NaN tokens of older clv files are read
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise damaged(f"not valid JSON ({exc})") from None
    if not isinstance(data, expect):
        found = type(data).__name__
        raise damaged(f"its top level is a {found}, where a JSON {_json_name(expect)} belongs")
    return data


def _json_name(kind: type) -> str:
    return {dict: "object", list: "array", str: "string"}.get(kind, kind.__name__)
