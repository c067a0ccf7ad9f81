"""clv beside its peers on hidden splits: lifetimes, and CLVTools and BTYDplus where R has them.

    python benchmarks/peers.py                      # every log
    python benchmarks/peers.py --log grocery --log regular

The protocol is the one a user lives: every model sees the log up to a cutoff and forecasts each
customer's repeat purchases in the weeks after it, which none of them saw. clv runs as shipped
(``clv train --as-of CUTOFF``: it chooses among its candidates on holdouts inside the log it was
given, refits, and ``clv score`` forecasts the hidden weeks), and with one model forced
(``train.candidates``) for the models the peers have. lifetimes' BG/NBD, MBG/NBD and Pareto/NBD are
fitted on the same calibration table (``ages.lifetimes_forecasts``); CLVTools' Pareto/NBD,
BG/NBD and GG/NBD and BTYDplus' MBG/CNBD-k (k by likelihood) run in ``peers.R`` when
``Rscript`` and the packages are installed (they are left out, with a line saying so, when
not). Per log and model: mean Poisson deviance (proper for a forecast mean: the score that
ranks), RMSE, MAE (shown, never ranked on: it rewards forecasting too little) and aggregate
error, the deviance's ratio to the best lifetimes model in hindsight, and the paired z of the
per-customer deviance against that model's (``z``: below −1.96 a forecast better than it beyond
noise, above 1.96 worse; between, the holdout cannot tell them apart).

The logs: the CDNOW sample on the papers' split, full CDNOW (26 weeks), apparel (52 weeks),
BTYDplus' grocery log (the last 26 weeks hidden) and 20,000 simulated regular buyers (Erlang-3
gaps, ``zoo.Regime``, ``--seed``; the last 26 weeks hidden). On the simulated log the true model
at the population's parameters is a row too (``truth``): no forecast of the mean beats it in
expectation, so it bounds any goal there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from ages import cleaned, lifetimes_forecasts
from zoo import Regime, generate, oracle_forecast

REPO = Path(__file__).resolve().parents[1]
CLV = str(Path(sys.executable).with_name("clv"))
APPAREL = REPO.parent / "shared" / "data" / "apparel" / "transactions.csv"
GROCERY = REPO / "tests" / "data" / "grocery.csv"
#: name → (source, cutoff, end); None: the last ``HIDDEN`` weeks of the log are hidden
LOGS: dict[str, tuple[str, str | None, str | None]] = {
    "cdnow-sample": ("cdnow-sample", "1997-09-30", "1998-06-30"),
    "cdnow": ("cdnow", "1997-12-31", "1998-06-30"),
    "apparel": (str(APPAREL), "2007-12-31", "2008-12-31"),
    "grocery": (str(GROCERY), None, None),
    "regular": ("regular", None, None),
}
HIDDEN = 26
#: clv with one model forced (the peers' models)
FORCED = ("bgnbd", "pareto", "ggomnbd", "mbgcnbd")


def paired_z(differences: np.ndarray) -> float:
    """The mean of per-customer differences over its standard error: |z| below 1.96 is a
    difference the holdout cannot tell from noise (two-sided 5 %)."""
    spread = float(np.std(differences, ddof=1))
    return float(np.mean(differences)) / (spread / np.sqrt(differences.size)) if spread else 0.0


def scores(actual: np.ndarray, forecast: np.ndarray) -> dict[str, float]:
    """Deviance, RMSE, MAE and aggregate % error of one forecast."""
    from clv import metrics

    return {
        "deviance": metrics.poisson_deviance(actual, forecast),
        "rmse": metrics.rmse(actual, forecast),
        "mae": metrics.mae(actual, forecast),
        "aggregate_pct": metrics.aggregate_error_pct(actual, forecast),
    }


def clv_forecast(
    source: str,
    cutoff: pd.Timestamp,
    end: pd.Timestamp,
    folder: Path,
    extra: list[str],
    tree: Path | None = None,
) -> tuple[pd.Series | None, str]:
    """``clv train --as-of cutoff`` then ``clv score`` of the hidden weeks: the forecast per
    customer and what was chosen (or the error's last line). ``tree``: run the clv of another
    checkout (its ``src`` first on the path), e.g. a baseline in the same run."""
    env = None if tree is None else {**os.environ, "PYTHONPATH": str(tree / "src")}
    model = folder / "model"
    shutil.rmtree(model, ignore_errors=True)
    as_of = str(cutoff.date())
    train = [CLV, "train", "-t", source, "--as-of", as_of, "--model-dir", str(model)]
    done = subprocess.run([*train, "--no-mlflow", *extra], capture_output=True, text=True, env=env)
    if done.returncode:
        return None, (done.stdout + done.stderr).strip().splitlines()[-1][:120]
    out = folder / "scores.csv"
    weeks = str((end - cutoff).days / 7)
    score = [CLV, "score", "--model", str(model), "-t", source, "--as-of", as_of]
    done = subprocess.run(
        [*score, "--horizon", weeks, "--time-unit", "week", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode:
        return None, (done.stdout + done.stderr).strip().splitlines()[-1][:120]
    table = pd.read_csv(out, dtype={"customer_id": str})
    chosen = json.loads((model / "bundle.json").read_text())["purchase_model"]
    name = chosen["kind"]
    if "weights" in chosen:
        parts = zip(chosen["members"], chosen["weights"], strict=True)
        name += " (" + " + ".join(f"{w:.2f} {m['kind']}" for m, w in parts) + ")"
    return table.set_index("customer_id")["expected_purchases"], name


def r_forecasts(log: pd.DataFrame, cutoff: pd.Timestamp, end: pd.Timestamp, folder: Path):
    """The R peers' forecasts per customer (``peers.R``), or None without ``Rscript``."""
    if shutil.which("Rscript") is None:
        print("Rscript is not installed: CLVTools and BTYDplus are left out", file=sys.stderr)
        return None
    days = log.assign(date=log["date"].dt.strftime("%Y-%m-%d"))
    days = days[log["date"] <= end][["customer_id", "date", "amount"]]
    path, out = folder / "log.csv", folder / "r.csv"
    days.to_csv(path, index=False)
    script = str(Path(__file__).with_name("peers.R"))
    done = subprocess.run(
        ["Rscript", script, str(path), str(cutoff.date()), str(end.date()), str(out)],
        capture_output=True,
        text=True,
    )
    if done.stderr.strip():
        print(done.stderr.strip(), file=sys.stderr)
    if done.returncode:
        return None
    return pd.read_csv(out, dtype={"customer_id": str}).set_index("customer_id")


def one_log(name: str, folder: Path, forced: bool, seed: int = 0) -> list[dict[str, object]]:
    """Every model's row on log ``name`` (``seed``: the simulated log's). On the simulated log
    the true model with the population's parameters (``truth``) is a row too: the best a
    forecast of the mean can do in expectation, so the bound of any goal there."""
    from clv.features import build_calibration_holdout
    from clv.metrics import unit_poisson_deviance

    source, cut, stop = LOGS[name]
    regime = None
    if source == "regular":
        path = folder / "regular.csv"
        regime = Regime(customers=20_000, months=24, k=3, seed=seed)
        generate(regime).to_csv(path, index=False)
        source = str(path)
    log = cleaned(source)
    log["amount"] = log.get("amount", 0.0)
    end = pd.Timestamp(stop) if stop else log["date"].max()
    cutoff = pd.Timestamp(cut) if cut else end - pd.Timedelta(weeks=HIDDEN)
    cal = build_calibration_holdout(log, cutoff, end, "week").set_index("customer_id")
    actual = cal["frequency_holdout"].to_numpy(dtype=float)
    horizon = (end - cutoff).days / 7
    rows: list[dict[str, object]] = []
    units: list[np.ndarray | None] = []  # each row's per-customer deviance

    def add(peer: str, model: str, forecast: np.ndarray | None, seconds: float) -> None:
        row: dict[str, object] = {"log": name, "peer": peer, "model": model}
        if forecast is not None:
            row |= scores(actual, np.asarray(forecast, dtype=float))
        rows.append(row | {"seconds": round(seconds, 1)})
        units.append(None if forecast is None else unit_poisson_deviance(actual, forecast))

    started = time.perf_counter()
    for kind, forecast in lifetimes_forecasts(cal.reset_index(), horizon).items():
        add("lifetimes", kind, forecast, time.perf_counter() - started)
    if regime is not None:
        add("truth", "MBG/CNBD-k", oracle_forecast(regime, cal.reset_index(), horizon), 0.0)
    started = time.perf_counter()
    theirs = r_forecasts(log, cutoff, end, folder)
    for column in [] if theirs is None else [c for c in theirs.columns]:
        peer, model = column.split("_", 1)
        add(
            peer, model, theirs[column].reindex(cal.index).to_numpy(), time.perf_counter() - started
        )
    runs = [("clv", [])]
    for kind in FORCED if forced else ():
        config = folder / f"{kind}.yaml"
        config.write_text(f"train:\n  candidates: [{kind}]\n  regularity_model: false\n")
        runs.append((f"clv {kind}", ["--config", str(config)]))
    for peer, extra in runs:
        started = time.perf_counter()
        forecast, chosen = clv_forecast(source, cutoff, end, folder, extra)
        values = None if forecast is None else forecast.reindex(cal.index).to_numpy()
        add(peer, chosen, values, time.perf_counter() - started)
    lifetimes = [i for i, r in enumerate(rows) if r["peer"] == "lifetimes" and "deviance" in r]
    best = min(lifetimes, key=lambda i: rows[i]["deviance"], default=None)
    lowest = np.nan if best is None else rows[best]["deviance"]
    for row, unit in zip(rows, units, strict=True):
        row["ratio"] = row.get("deviance", np.nan) / lowest
        row["z"] = np.nan if best is None or unit is None else paired_z(unit - units[best])
    return rows


def cutoffs(name: str, every: int, hidden: int, baseline: Path | None) -> list[dict[str, object]]:
    """clv as shipped (and ``baseline``'s clv) at cutoffs ``every`` weeks apart with ``hidden``
    weeks hidden after each, beside lifetimes' best in hindsight: the choice judged over many
    hidden splits, not one."""
    from clv.features import build_calibration_holdout
    from clv.metrics import poisson_deviance

    source = LOGS[name][0]
    log = cleaned(source)
    last, first = log["date"].max(), log["date"].min()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cut = last - pd.Timedelta(weeks=hidden)
        while cut > first + pd.Timedelta(weeks=hidden + 4):  # a 26-week holdout inside
            end = cut + pd.Timedelta(weeks=hidden)
            cal = build_calibration_holdout(log, cut, end, "week").set_index("customer_id")
            actual = cal["frequency_holdout"].to_numpy(dtype=float)
            theirs = lifetimes_forecasts(cal.reset_index(), float(hidden))
            best = min((poisson_deviance(actual, f) for f in theirs.values()), default=np.nan)
            row: dict[str, object] = {"log": name, "cutoff": str(cut.date()), "lifetimes": best}
            for label, tree in (("clv", None), ("baseline", baseline)):
                if label == "baseline" and tree is None:
                    continue
                forecast, chosen = clv_forecast(source, cut, end, Path(tmp), [], tree)
                if forecast is not None:
                    value = poisson_deviance(actual, forecast.reindex(cal.index).to_numpy())
                    row[f"{label}_chosen"], row[f"{label}_ratio"] = chosen, value / best
            rows.append(row)
            print(json.dumps(row), flush=True)
            cut -= pd.Timedelta(weeks=every)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", action="append", choices=sorted(LOGS))
    parser.add_argument("--no-forced", action="store_true", help="clv as shipped only")
    parser.add_argument("--out", type=Path, default=None, help="CSV of the table")
    parser.add_argument(
        "--cutoffs", type=int, default=0, help="weeks between cutoffs: many hidden splits"
    )
    parser.add_argument("--baseline", type=Path, help="another clv checkout, run beside")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated regular log")
    args = parser.parse_args()
    if args.cutoffs:
        table = pd.DataFrame(
            [
                r
                for n in args.log or ["cdnow"]
                for r in cutoffs(n, args.cutoffs, HIDDEN, args.baseline)
            ]
        )
        if args.out:
            table.to_csv(args.out, index=False)
        print(table.to_string(index=False))
        print(table.filter(like="ratio").describe().round(4).to_string())
        return
    rows = []
    for name in args.log or list(LOGS):
        with tempfile.TemporaryDirectory() as tmp:
            rows += one_log(name, Path(tmp), not args.no_forced, args.seed)
        print(pd.DataFrame(rows).query("log == @name").to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    pivot = table.assign(name=table["peer"] + " " + table["model"].astype(str))
    print(pivot.pivot_table(index="name", columns="log", values="ratio").round(4).to_string())


if __name__ == "__main__":
    main()
