"""The one place that imports ``lifetimes``.

lifetimes 0.11 changes process-wide warning filters when imported and again inside every
likelihood evaluation (it silences FutureWarning). Both happen here inside
``warnings.catch_warnings()``, so the caller's filters are left as they were.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import TypeVar

from clv.errors import ModelFitError

T_co = TypeVar("T_co")


@contextmanager
def guarded() -> Iterator[None]:
    """Run lifetimes code without letting it change warning filters or print.

    lifetimes prints scipy's optimizer result when a fit fails; that text is swallowed here
    (the failure itself is raised and reported by :func:`fit_with_retry`).
    """
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", RuntimeWarning)  # autograd's log(0) while line-searching
        yield


def fitters() -> ModuleType:
    """Return ``lifetimes.fitters``' public classes, imported without side effects."""
    with guarded():
        import lifetimes

    return lifetimes


def fit_with_retry(
    fit: Callable[[float], T_co], penalizers: list[float], what: str, data: str, advice: str
) -> tuple[T_co, float]:
    """Call ``fit(penalizer)`` for each penalizer until one succeeds.

    Returns the result and the penalizer that worked; raises :class:`ModelFitError` naming the
    model, the data and every attempt when none does. ``fit`` signals failure by raising
    ``ArithmeticError``, ``ValueError`` (lifetimes' ``ConvergenceError`` is one) or
    ``LinAlgError``.
    """
    import numpy as np

    failures = []
    for coef in penalizers:
        try:
            return fit(coef), coef
        except (ArithmeticError, ValueError, np.linalg.LinAlgError) as exc:
            failures.append(f"penalizer {coef:g}: {type(exc).__name__}: {str(exc).strip()}")
    raise ModelFitError(
        f"{what} did not converge on {data}. Attempts: {'; '.join(failures)}. {advice}"
    )
