"""The ``clv`` command: one module per command, registered on one Typer app.

- :mod:`~clv.cli.options` — the options the commands share, option → config key maps, and
  settings (defaults ← ``--config`` file ← command line);
- :mod:`~clv.cli.console` — consoles, tables, progress bars and the shared printers;
- :mod:`~clv.cli.train`, :mod:`~clv.cli.evaluate`, :mod:`~clv.cli.score`,
  :mod:`~clv.cli.prepare`, :mod:`~clv.cli.kpis`, :mod:`~clv.cli.monitor`,
  :mod:`~clv.cli.models`, :mod:`~clv.cli.promote` — one command each, with its own printers.

Heavy libraries (pandas, DuckDB, lifetimes, scipy, MLflow) are imported inside the commands,
so ``clv --help`` stays fast. :func:`main` is the installed ``clv`` entry point; it alone
changes process-wide state (signal handlers, OpenMP's wait policy, MLflow's log level), and
puts the handlers back when the command ends; after a command that succeeded it ends the
process without the interpreter's teardown (:func:`end_without_teardown`).
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperCommand

from clv.cli import evaluate, kpis, models, monitor, prepare, promote, score, train


class PlainHelpCommand(TyperCommand):
    """A command whose option help is plain text: rich would read a default written
    ``[default: customer_id]`` as a markup tag and drop it, so the brackets are escaped once,
    when the command is built."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            text = getattr(param, "help", None)
            if text:
                param.help = escape(text)  # type: ignore[attr-defined]


app = typer.Typer(
    help="Customer lifetime value: train BTYD + Gamma-Gamma models and score customer lists.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
for command in (
    train.train,
    evaluate.evaluate,
    score.score,
    prepare.prepare,
    kpis.kpis,
    monitor.monitor,
    models.models,
    promote.promote,
):
    app.command(cls=PlainHelpCommand)(command)

#: The ``clv`` process's environment unless the user set it: MLflow's INFO lines drown the
#: command's own report, and its artifact progress bars fight the rich spinner. Set before any
#: library loads, with :func:`openmp_defaults`.
PROCESS_DEFAULTS = {
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def allocator_defaults(platform: str = sys.platform) -> dict[str, str]:
    """Which allocator Arrow uses in the ``clv`` process (its buffers: Parquet chunks, DuckDB
    results), unless the user chose (``ARROW_DEFAULT_MEMORY_POOL``).

    pyarrow's default on Linux, mimalloc, keeps the memory of freed buffers for reuse: after
    reading and cleaning a log of 100M rows it held about 1 GB that no live buffer used, for
    the rest of the run. jemalloc (in pyarrow's Linux wheels) hands freed pages back to the
    system within about a second, at the same speed here (the clean of 100M rows 55 s against
    54 s). Elsewhere the default stays: not every wheel has jemalloc.

    Returns
    -------
    dict
        ``{"ARROW_DEFAULT_MEMORY_POOL": "jemalloc"}`` on Linux, else nothing.
    """
    return {"ARROW_DEFAULT_MEMORY_POOL": "jemalloc"} if platform.startswith("linux") else {}


def openmp_defaults(environ: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """How OpenMP threads (LightGBM's) wait in the ``clv`` process, unless the user chose.

    By default GNU libgomp spins ~3 ms before a waiting thread sleeps: on a machine whose cores
    other processes hold, the spinning threads take the time slices of the ones they wait for,
    and a 10-second training takes ten minutes. ``OMP_WAIT_POLICY=PASSIVE`` makes them sleep at
    once. A short spin instead (``GOMP_SPINCOUNT=10000``, ~0.1 ms) was measured and not kept: on
    a quiet machine it saved the wake-ups of the 1M-customer churn classifier when it trained
    alone (12.7 s → 8.5–9.6 s), but with the trainings on a worker thread beside the main line
    (:mod:`clv.background`, then with 2 LightGBM threads) the whole 1M training was as fast
    either way (33.0 s vs 32.4 s, ``--no-mlflow``) and slower beside busy processes (79.7 s vs
    57.2 s beside 2, 117 s vs 106 s beside 4; ``benchmarks/contention.py``). On 2 CPUs the
    worker now trains single-threaded, with no OpenMP waits at all.

    Returns
    -------
    dict
        Variables to set: none when ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` is already set
        (either is the user's choice of how threads wait).
    """
    if "OMP_WAIT_POLICY" in environ or "GOMP_SPINCOUNT" in environ:
        return {}
    return {"OMP_WAIT_POLICY": "PASSIVE"}


def _terminating() -> list[signal.Signals]:
    """SIGTERM, and SIGHUP where it exists (not on Windows)."""
    return [getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)]


def install_signal_handlers() -> dict[signal.Signals, Any]:
    """Make a terminating signal (kill, a CI timeout, a closed terminal) unwind like Ctrl-C:
    temporary folders, DuckDB spill files and half-written outputs are removed on the way out,
    and the process exits with 128 + the signal number. A second signal does not cut that
    clean-up short. Returns the handlers it replaced (for :func:`restore_signal_handlers`)."""
    state: dict[str, int] = {}

    def terminate(signum: int, frame: Any) -> None:
        if "code" in state:
            return  # a second signal must not cut the clean-up short (it may already be pending)
        for sig in _terminating():
            signal.signal(sig, signal.SIG_IGN)
        code = state["code"] = 128 + signum
        # DuckDB turns the exit into "Query interrupted" after cleaning up: end quietly
        sys.excepthook = lambda *_: os._exit(code)
        raise SystemExit(code)

    return {sig: signal.signal(sig, terminate) for sig in _terminating()}


def restore_signal_handlers(previous: dict[signal.Signals, Any]) -> None:
    """Put back the handlers :func:`install_signal_handlers` replaced."""
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def end_without_teardown(succeeded: dict[str, bool]) -> None:
    """The last exit handler of the ``clv`` process (:func:`main` registers it first): once a
    command has succeeded and every other exit handler has run (MLflow's, Spark's, logging's),
    flush the standard streams and end the process at once.

    The interpreter's own teardown frees nothing the operating system does not, and with
    MLflow, SQLAlchemy and LightGBM loaded (4,000 modules, half a million objects) it took
    1.4 s of a 35 s training of 1M customers. Every file and DuckDB spill folder clv writes is
    closed by then (context managers). A failed command exits the normal way.
    """
    if not succeeded.get("done"):
        return
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main() -> None:
    """The ``clv`` command (the installed entry point, and ``python -m clv.cli``)."""
    defaults = {**PROCESS_DEFAULTS, **allocator_defaults(), **openmp_defaults(os.environ)}
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    succeeded: dict[str, bool] = {}
    atexit.register(end_without_teardown, succeeded)  # first registered: runs last
    previous = install_signal_handlers()
    try:
        app()
    except SystemExit as exit_:
        succeeded["done"] = exit_.code in (None, 0)
        raise
    finally:
        restore_signal_handlers(previous)
