"""The stage runner: a training run as named stages, the essential ones ending the run when they
fail and every other one degrading.

Essential stages — reading and cleaning the log, the calibration/holdout split, at least one
purchase model, writing the bundle — raise: the run ends with their reason. Every other stage is
*optional* and runs through :meth:`StageLog.optional`: when it fails, the run goes on without
its part. The failure becomes

- a stage line (``Skipped <stage>: <reason>; <what the run does instead>``),
- an entry of :attr:`StageLog.skipped`, which the scorecard (``skipped``), the bundle's
  notices and the MLflow run (tags ``skipped.<stage>``) carry, and
- the stage's fallback value (e.g. no spend model, or a churn score from the shipped purchase
  model's P(no purchase)).

That is the one place where a stage's failure is caught: a stage's own code raises, and the
caller says what the run does without it. Stopping (Ctrl-C, a failed main line:
:class:`clv.background.StoppedError`), running out of memory, an output path that must not be
written and a lock held by another run are not the stage's failure and still end the run. No
optional stage touches the tracking store: logging is essential and has its own recovery
(:func:`clv.training.train`).

The optional stages, by name (:data:`OPTIONAL_STAGES`): the earlier holdout window of the rolling
origin (:mod:`clv.origins`), the Gamma-Gamma fit and its covariates,
interval calibration, the churn classifier on the calibration window (the scorecard's churn
comparison) and on the latest window (the shipped one), the Gamma-Gamma refit, the KPI report,
the figures and the churn promotion test.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import TypeVar

R = TypeVar("R")

#: The optional stages and what each is called in a stage line.
OPTIONAL_STAGES = {
    "rolling_origin": "the earlier holdout window",
    "gamma_gamma": "the Gamma-Gamma spend model",
    "spend_covariates": "the spend covariates",
    "interval_calibration": "the interval calibration",
    "churn_evaluation": "the churn classifier on the calibration window",
    "churn_classifier": "the shipped churn classifier",
    "spend_refit": "the Gamma-Gamma refit on the whole log",
    "kpis": "the KPI report",
    "figures": "the evaluation figures",
    "churn_promotion": "the churn promotion test",
}


def _fatal() -> tuple[type[BaseException], ...]:
    """Errors that are not a stage's own failure: they end the run wherever they happen."""
    from clv.background import StoppedError
    from clv.locks import LockedError
    from clv.outputs import OutputPathError

    return StoppedError, MemoryError, LockedError, OutputPathError


def reason_of(exc: BaseException) -> str:
    """A failure in one line: a clv error's own message, else its type and first line."""
    from clv.errors import ClvError

    text = str(exc).strip().splitlines()[0][:400] if str(exc).strip() else ""
    if isinstance(exc, ClvError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class StageLog:
    """Stage lines with the seconds since the run started, and the runner of optional stages.

    ``sink`` (e.g. the CLI's printer) receives each line at once; ``lines`` keeps them for the
    run's log file (``train.log`` in the MLflow run), with the traceback of each skipped stage;
    ``skipped`` maps each skipped stage to its ``reason`` and what the run did ``instead``.
    """

    def __init__(self, sink: Callable[[str], None] | None = None) -> None:
        self.lines: list[str] = []
        self.skipped: dict[str, dict[str, str]] = {}
        self._sink = sink
        self._start = time.perf_counter()

    def __call__(self, message: str) -> None:
        line = f"[{time.perf_counter() - self._start:7.1f} s] {message}"
        self.lines.append(line)
        if self._sink is not None:
            self._sink(line)

    def optional(
        self, stage: str, work: Callable[[], R], instead: str, fallback: R | None = None
    ) -> R | None:
        """``work()``, or ``fallback`` when it fails (module docstring).

        Parameters
        ----------
        stage : str
            A key of :data:`OPTIONAL_STAGES`.
        work : callable
            The stage, without arguments.
        instead : str
            What the run does without the stage, for the stage line (e.g. "no value scores").
        fallback : object, optional
            Returned when the stage fails.

        Returns
        -------
        object
            The stage's result, or ``fallback``.
        """
        if stage not in OPTIONAL_STAGES:
            raise KeyError(f"{stage!r} is not an optional stage: {sorted(OPTIONAL_STAGES)}")
        try:
            return work()
        except _fatal():
            raise
        except Exception as exc:  # the one place an optional stage's failure is caught
            reason = reason_of(exc)
            self.skipped[stage] = {"reason": reason, "instead": instead}
            self(f"Skipped {OPTIONAL_STAGES[stage]}: {reason}; {instead}")
            self.lines.append("".join(traceback.format_exception(exc)).rstrip())
            return fallback

    def notices(self) -> list[str]:
        """One notice per skipped stage, for the bundle and the CLI."""
        return [
            f"Skipped {OPTIONAL_STAGES[stage]}: {entry['reason']}; {entry['instead']}."
            for stage, entry in self.skipped.items()
        ]
