"""Real logs at many ages: CDNOW (and apparel, grocery) cut at the end of every month and judged
on holdouts of 4, 13, 26 and 39 weeks, clv beside lifetimes on the same split.

For each calibration end ``c`` (the last day of a month) and holdout ``h`` (weeks) such that
``c + h`` is inside the log, ``clv train --calibration-end c --as-of c + h`` sees the log to
``c`` for its choice and is judged on ``(c, c + h]``; lifetimes' BG/NBD, MBG/NBD and Pareto/NBD
are fitted on the same calibration table and judged on the same holdout. The table: exit code,
the model clv chose, its holdout mean Poisson deviance, and its ratio to the best lifetimes
model in hindsight (lower is better; a lifetimes fit that fails or gives non-finite forecasts
is left out of that best).

``python benchmarks/ages.py`` runs CDNOW's grid (13 × 4); ``--log apparel`` or ``--log grocery``
the others (their calibration ends run monthly over the log). The tests
(``tests/integration/test_ages.py``) run a sample of the grid.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
CLV = str(Path(sys.executable).with_name("clv"))
HOLDOUTS = (4, 13, 26, 39)
LOGS = {
    "cdnow": ("cdnow", ("1997-03-31", "1998-03-31"), []),
    "apparel": (
        str(REPO.parent / "shared" / "data" / "apparel" / "transactions.csv"),
        None,
        [],
    ),
    "grocery": (str(REPO / "tests" / "data" / "grocery.csv"), None, []),
}


def month_ends(first: str, last: str) -> list[pd.Timestamp]:
    """The last day of every month from ``first``'s to ``last``'s."""
    return list(pd.date_range(first, last, freq="ME"))


def grid(
    log_end: pd.Timestamp, ends: list[pd.Timestamp], holdouts=HOLDOUTS
) -> list[tuple[pd.Timestamp, int]]:
    """The (calibration end, holdout weeks) pairs whose holdout fits in the log."""
    return [(c, h) for c in ends for h in holdouts if c + pd.Timedelta(weeks=h) <= log_end]


def lifetimes_forecasts(cal: pd.DataFrame, horizon: float) -> dict[str, np.ndarray]:
    """Each customer's holdout forecast by lifetimes' three models fitted on ``cal`` (weeks);
    a model whose fit fails or whose forecasts are not finite and non-negative is left out."""
    from clv._lifetimes import fitters
    from clv.models.patterns import rfm_patterns

    lib = fitters()
    x, t_x, T = (cal[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    table = rfm_patterns(cal)
    patterns = [table[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T")]
    weights = table["weight"].to_numpy(dtype=float)
    out = {}
    for kind, cls in (
        ("bgnbd", "BetaGeoFitter"),
        ("mbgnbd", "ModifiedBetaGeoFitter"),
        ("pareto", "ParetoNBDFitter"),
    ):
        try:
            # lifetimes prints the optimizer's result when a fit fails: kept off the table
            quiet = contextlib.redirect_stdout(io.StringIO())
            with warnings.catch_warnings(), np.errstate(all="ignore"), quiet:
                warnings.simplefilter("ignore")
                # on the distinct (x, t_x, T) patterns with their counts: lifetimes' own
                # weights, the same maximum as one row a customer, minutes faster
                fitter = getattr(lib, cls)().fit(*patterns, weights=weights)
                forecast = np.asarray(
                    fitter.conditional_expected_number_of_purchases_up_to_time(horizon, x, t_x, T),
                    dtype=float,
                )
        except Exception:  # a peer's failure is a row of the table, not ours
            continue
        if np.isfinite(forecast).all() and (forecast >= 0).all():
            out[kind] = forecast
    return out


def lifetimes_deviances(cal: pd.DataFrame, horizon: float) -> dict[str, float]:
    """Holdout mean Poisson deviance of lifetimes' three models fitted on ``cal`` (weeks)."""
    from clv.metrics import poisson_deviance

    actual = cal["frequency_holdout"].to_numpy(dtype=float)
    return {k: poisson_deviance(actual, f) for k, f in lifetimes_forecasts(cal, horizon).items()}


def one(
    source: str,
    cut: pd.Timestamp,
    holdout: int,
    folder: Path,
    invoke: Callable[[list[str]], tuple[int, str]],
    extra: tuple[str, ...] = (),
) -> dict[str, object]:
    """Train and score one cell of the grid; its row."""
    as_of = cut + pd.Timedelta(weeks=holdout)
    model = folder / f"m-{cut.date()}-{holdout}"
    args = ["train", "-t", source, "--model-dir", str(model), "--no-mlflow"]
    args += ["--calibration-end", str(cut.date()), "--as-of", str(as_of.date()), *extra]
    started = time.perf_counter()
    code, output = invoke(args)
    row: dict[str, object] = {
        "calibration_end": str(cut.date()),
        "holdout": holdout,
        "exit": code,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if code != 0:
        row["output"] = output
        return row
    manifest = json.loads((model / "bundle.json").read_text())
    card = manifest["scorecard"]
    chosen = manifest["purchase_model"].get("limit_of") or manifest["model_selection"]["chosen"]
    row["chosen"] = manifest["model_selection"]["chosen"]
    row["deviance"] = card["purchases"][chosen]["poisson_deviance"]
    row["customers"] = card["protocol"]["customers"]
    out = folder / f"s-{cut.date()}-{holdout}.csv"
    score = ["score", "--model", str(model), "-t", source, "--as-of", str(as_of.date())]
    row["score_exit"], scored = invoke([*score, "--out", str(out)])
    if row["score_exit"] == 0:
        numbers = pd.read_csv(out).select_dtypes("number").to_numpy()
        row["finite"] = bool(np.isfinite(numbers).all())
    else:
        row["output"] = scored
    return row


def judge_against_lifetimes(row: dict[str, object], log: pd.DataFrame) -> None:
    """Add the best lifetimes deviance on the row's split and clv's ratio to it."""
    from clv.features import build_calibration_holdout

    if row.get("exit") != 0:
        return
    cut = pd.Timestamp(str(row["calibration_end"]))
    end = cut + pd.Timedelta(weeks=int(row["holdout"]))
    cal = build_calibration_holdout(log, cut, end, "week")
    theirs = lifetimes_deviances(cal, float(row["holdout"]))
    if theirs:
        best = min(theirs, key=theirs.get)
        row["lifetimes_best"], row["lifetimes_deviance"] = best, theirs[best]
        row["ratio"] = float(row["deviance"]) / theirs[best]


def in_subprocess(args: list[str]) -> tuple[int, str]:
    """Run ``clv args`` as a process of its own: exit code and output."""
    import subprocess

    done = subprocess.run([CLV, *args], capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


def cleaned(source: str) -> pd.DataFrame:
    """The log as clv reads it (customer_id, date, amount) for the lifetimes side."""
    from clv.config import Config
    from clv.data.clean import load_configured_log

    log = load_configured_log(Config().with_overrides({"data.transactions": source}))
    return log.frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", choices=sorted(LOGS), default="cdnow")
    parser.add_argument("--out", type=Path, default=None, help="CSV of the table")
    args = parser.parse_args()
    source, span, extra = LOGS[args.log]
    log = cleaned(source)
    first, last = log["date"].min(), log["date"].max()
    if span is None:  # monthly over the log, from its third month
        span = (str((first + pd.DateOffset(months=3)).date()), str(last.date()))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for cut, holdout in grid(last, month_ends(*span)):
            row = one(source, cut, holdout, Path(tmp), in_subprocess, tuple(extra))
            judge_against_lifetimes(row, log)
            if "output" in row:
                row["output"] = str(row["output"]).strip().splitlines()[-1][:200]
            rows.append(row)
            print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
