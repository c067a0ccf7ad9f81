"""A zoo of transaction logs with known truth, across the regimes a user's first log may be in.

Each :class:`Regime` names one log: how many customers, one cohort or continuous acquisition,
how old the log is, how much dropout (none, low, high) and rate heterogeneity (none, high), how
regular the purchases are (Erlang-k gaps, k = 1 … 5), the amounts (none, constant, heavy-tailed),
seasonality, and the holdout and churn horizons it is trained with.

The generating process, per customer: a first purchase at the acquisition time; purchase rate
λ ~ Gamma(r, α) per week (heterogeneity "none": every λ the same mean); gaps between purchases
Erlang-k with mean 1/λ; after every purchase (the first included) a dropout with probability
p ~ Beta(a, b) (dropout "none": p = 0). That is MBG/CNBD-k (MBG/NBD for k = 1) with Erlang rate
kλ, so the *oracle* — the true model with the population's parameters, scoring each customer
from their calibration history — is clv's ``mbgcnbd`` (``mbgnbd`` for k = 1) at those
parameters (:func:`oracle`). Seasonality thins purchases by ``1 + A sin(2π t / 52 weeks)`` and
has no oracle. Amounts: constant 25.00, or heavy-tailed (a customer's lognormal scale times a
Gamma(2) draw per purchase).

``python benchmarks/zoo.py`` trains and scores every regime of :func:`grid` (``--quick`` a
sample) through the ``clv`` CLI and prints a table: exit code, chosen model, holdout Poisson
deviance against the oracle's (``ratio``; ``--regularity-model`` lets MBG/CNBD-k join the
candidates on regular buyers, ``train.regularity_model``). The tests
(``tests/integration/test_zoo.py``) run a sample.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

START = pd.Timestamp("2021-01-04")
DAYS_PER_MONTH = 365.25 / 12
MEAN_RATE = 0.1  # purchases per week while alive
HETEROGENEITY = {"none": None, "high": 0.5}  # Gamma shape r of λ (None: one λ for everyone)
CLV = str(Path(sys.executable).with_name("clv"))  # the CLI of this environment
DROPOUT = {"none": None, "low": (1.0, 19.0), "high": (1.0, 3.0)}  # Beta(a, b) of p


@dataclass(frozen=True)
class Regime:
    """One log of the zoo (module docstring); ``holdout`` and ``churn`` in weeks."""

    customers: int = 2000
    acquisition: str = "cohort"  # or "continuous"
    months: float = 18.0
    dropout: str = "low"
    heterogeneity: str = "high"
    k: int = 1
    amounts: str = "heavy"  # "none", "constant", "heavy"
    seasonality: float = 0.0
    holdout: int = 26
    churn: int = 26
    seed: int = 0

    @property
    def name(self) -> str:
        return (
            f"n{self.customers}-{self.acquisition}-{self.months:g}m-drop_{self.dropout}-"
            f"het_{self.heterogeneity}-k{self.k}-amt_{self.amounts}-season{self.seasonality:g}-"
            f"h{self.holdout}-c{self.churn}-s{self.seed}"
        )

    @property
    def truth(self) -> dict[str, float] | None:
        """The oracle's parameters (clv's ``mbgcnbd``/``mbgnbd`` in weeks), None with
        seasonality (no model of it)."""
        if self.seasonality:
            return None
        shape = HETEROGENEITY[self.heterogeneity] or 1e4  # no heterogeneity: r → ∞, r/α fixed
        beta = DROPOUT[self.dropout] or (1e-4, 1e4)  # no dropout: p → 0
        # Erlang rate kλ ~ Gamma(r, α / k): the mean gap is 1/λ whatever k
        return {
            "r": shape,
            "alpha": shape / MEAN_RATE / self.k,
            "a": beta[0],
            "b": beta[1],
            **({"k": float(self.k)} if self.k > 1 else {}),
        }


def generate(regime: Regime) -> pd.DataFrame:
    """The log of ``regime``: ``customer_id, date`` (+ ``amount``), one row per purchase."""
    rng = np.random.default_rng(regime.seed)
    n, k = regime.customers, regime.k
    days = regime.months * DAYS_PER_MONTH
    span = 28.0 if regime.acquisition == "cohort" else days
    first = rng.uniform(0.0, span, n)
    shape = HETEROGENEITY[regime.heterogeneity]
    lam = (
        rng.gamma(shape, MEAN_RATE / shape, n) if shape else np.full(n, MEAN_RATE)
    ) / 7.0  # per day
    beta = DROPOUT[regime.dropout]
    drop = rng.beta(*beta, n) if beta else np.zeros(n)
    owners, times = [np.arange(n)], [first]
    active, clock = np.arange(n), first.copy()
    while active.size:
        alive = rng.random(active.size) >= drop[active]  # after every purchase, the first too
        active, clock = active[alive], clock[alive]
        clock = clock + rng.gamma(k, 1.0, active.size) / (k * np.maximum(lam[active], 1e-12))
        keep = clock < days
        active, clock = active[keep], clock[keep]
        owners.append(active)
        times.append(clock)
    owner, t = np.concatenate(owners), np.concatenate(times)
    if regime.seasonality:  # thinning; the first purchase is kept (it defines the customer)
        weight = (1 + regime.seasonality * np.sin(2 * np.pi * t / 364.0)) / (1 + regime.seasonality)
        first_row = np.zeros(owner.size, dtype=bool)
        first_row[:n] = True
        kept = first_row | (rng.random(owner.size) < weight)
        owner, t = owner[kept], t[kept]
    frame = pd.DataFrame(
        {
            "customer_id": np.char.add("c", owner.astype(str)),
            "date": START + pd.to_timedelta(np.floor(t), unit="D"),
        }
    )
    if regime.amounts == "constant":
        frame["amount"] = 25.0
    elif regime.amounts == "heavy":
        scale = rng.lognormal(3.0, 1.0, n)
        frame["amount"] = np.round(scale[owner] * rng.gamma(2.0, 0.5, owner.size), 2)
    return frame.sort_values(["date", "customer_id"], kind="stable").reset_index(drop=True)


def calibration_counts(log: pd.DataFrame, regime: Regime) -> tuple[int, int]:
    """Customers and repeat buyers (two or more purchase days) in the calibration period."""
    end = log["date"].max() - pd.Timedelta(weeks=regime.holdout)
    days = log.loc[log["date"] <= end].drop_duplicates(["customer_id", "date"])
    per = days.groupby("customer_id").size()
    return int(per.size), int((per > 1).sum())


def grid() -> list[Regime]:
    """The full zoo: every axis at each of its values around a middle regime, plus the
    crossings of dropout × heterogeneity × regularity at 5,000 customers (the oracle checks)."""
    base = Regime()
    axes = {
        "customers": [50, 100, 300, 2000, 20_000, 200_000, 1_000_000],
        "acquisition": ["cohort", "continuous"],
        "months": [3, 6, 12, 24, 60],
        "dropout": ["none", "low", "high"],
        "heterogeneity": ["none", "high"],
        "k": [1, 2, 3, 5],
        "amounts": ["none", "constant", "heavy"],
        "seasonality": [0.0, 0.6],
        "holdout": [4, 13, 26, 52],
        "churn": [4, 13, 26, 52],
    }
    regimes = [
        _fit_horizons(replace(base, **{axis: value})) for axis, vs in axes.items() for value in vs
    ]
    for dropout, het, k in itertools.product(DROPOUT, HETEROGENEITY, (1, 3)):
        regimes.append(
            Regime(customers=5000, months=24, dropout=dropout, heterogeneity=het, k=k, seed=1)
        )
    return list(dict.fromkeys(regimes))


def _fit_horizons(regime: Regime) -> Regime:
    """Holdout and churn horizons that fit a young log: at most a third of its age."""
    weeks = regime.months * DAYS_PER_MONTH / 7
    cap = max(2, int(weeks / 3))
    return replace(regime, holdout=min(regime.holdout, cap), churn=min(regime.churn, cap))


def sample(count: int, seed: int, max_customers: int = 2000) -> list[Regime]:
    """``count`` regimes drawn across every axis (small logs, for the tests)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        regime = Regime(
            customers=int(rng.choice([50, 80, 150, 400, 1000, max_customers])),
            acquisition=str(rng.choice(["cohort", "continuous"])),
            months=float(rng.choice([3, 6, 12, 24, 60])),
            dropout=str(rng.choice(list(DROPOUT))),
            heterogeneity=str(rng.choice(list(HETEROGENEITY))),
            k=int(rng.integers(1, 6)),
            amounts=str(rng.choice(["none", "constant", "heavy"])),
            seasonality=float(rng.choice([0.0, 0.6])),
            holdout=int(rng.choice([4, 13, 26, 52])),
            churn=int(rng.choice([4, 13, 26, 52])),
            seed=seed * 1000 + i,
        )
        out.append(_fit_horizons(regime))
    return out


def oracle_forecast(regime: Regime, cal: pd.DataFrame, horizon: float) -> np.ndarray | None:
    """The true model's expected holdout purchases of each calibration customer (weeks)."""
    from clv.models.fitted import PurchaseModel

    truth = regime.truth
    if truth is None:
        return None
    kind = "mbgcnbd" if regime.k > 1 else "mbgnbd"
    model = PurchaseModel(kind, truth, "week")
    x, t_x, T = (cal[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    return model.expected_purchases(horizon, x, t_x, T)


def judge(regime: Regime, log: pd.DataFrame, model_dir: Path) -> dict[str, float]:
    """Holdout Poisson deviance of the shipped model's choice (its calibration fit, as the
    scorecard has it) and of the oracle, on the same split."""
    from clv import metrics
    from clv.features import build_calibration_holdout

    card = json.loads((model_dir / "scorecard.json").read_text())
    protocol = card["protocol"]
    end = pd.Timestamp(protocol["observation_end"])
    cut = pd.Timestamp(protocol["calibration_end"])
    cal = build_calibration_holdout(log, cut, end, "week")
    manifest = json.loads((model_dir / "bundle.json").read_text())
    # the candidate the scorecard scored (a boundary fit ships its limit, named limit_of)
    chosen = manifest["purchase_model"].get("limit_of") or manifest["model_selection"]["chosen"]
    out = {"deviance": card["purchases"][chosen]["poisson_deviance"]}
    forecast = oracle_forecast(regime, cal, protocol["holdout_length"])
    if forecast is not None:
        actual = cal["frequency_holdout"].to_numpy(dtype=float)
        out["oracle_deviance"] = metrics.poisson_deviance(actual, forecast)
        out["ratio"] = out["deviance"] / out["oracle_deviance"]
    return out


def in_subprocess(args: list[str]) -> tuple[int, str]:
    """Run ``clv args`` as a process of its own: exit code and output."""
    done = subprocess.run([CLV, *args], capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


def train_args(regime: Regime, path: Path, model: Path) -> list[str]:
    """The ``clv train`` arguments of ``regime``'s log at ``path``."""
    args = ["train", "-t", str(path), "--model-dir", str(model), "--no-mlflow"]
    args += ["--holdout", str(regime.holdout), "--churn-horizon", str(regime.churn)]
    return args + (["--no-amounts"] if regime.amounts == "none" else [])


def run(
    regime: Regime,
    folder: Path,
    invoke: Callable[[list[str]], tuple[int, str]] = in_subprocess,
    extra: tuple[str, ...] = (),
) -> dict[str, object]:
    """Train and score ``regime``'s log with the ``clv`` CLI (``invoke``: in a process of its
    own, or the tests' in-process runner; ``extra``: more ``clv train`` options); the row of
    the zoo table, with the output of a run that failed (``output``)."""
    log = generate(regime)
    path = folder / f"{regime.name}.csv"
    log.to_csv(path, index=False)
    customers, repeat = calibration_counts(log, regime)
    model = folder / f"{regime.name}-model"
    started = time.perf_counter()
    code, output = invoke([*train_args(regime, path, model), *extra])
    row: dict[str, object] = {
        **asdict(regime),
        "calibration_customers": customers,
        "repeat_buyers": repeat,
        "exit": code,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if code != 0:
        row["output"] = output
        return row
    manifest = json.loads((model / "bundle.json").read_text())
    purchase = manifest["purchase_model"]
    row["chosen"] = purchase.get("limit_of", manifest["model_selection"]["chosen"])
    row["shipped"] = purchase["kind"]
    row["skipped"] = ",".join(manifest["scorecard"].get("skipped", {}))
    row |= judge(regime, log, model)
    out = folder / f"{regime.name}-scores.csv"
    row["score_exit"], scored = invoke(
        ["score", "--model", str(model), "-t", str(path), "--out", str(out)]
    )
    if row["score_exit"] == 0:
        numbers = pd.read_csv(out).select_dtypes("number").to_numpy()
        row["finite"] = bool(np.isfinite(numbers).all())
    else:
        row["output"] = scored
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", type=int, default=0, help="a sample of this many regimes")
    parser.add_argument("--max-customers", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=None, help="CSV of the table")
    parser.add_argument("--regularity-model", action="store_true", help="train.regularity_model")
    args = parser.parse_args()
    regimes = sample(args.quick, seed=7) if args.quick else grid()
    regimes = [r for r in regimes if r.customers <= args.max_customers]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        extra: tuple[str, ...] = ()
        if args.regularity_model:
            config = Path(tmp) / "regular.yaml"
            config.write_text("train:\n  regularity_model: true\n")
            extra = ("--config", str(config))
        for regime in regimes:
            rows.append(run(regime, Path(tmp), extra=extra))
            if "output" in rows[-1]:  # the last line of a failed run: its reason
                rows[-1]["output"] = str(rows[-1]["output"]).strip().splitlines()[-1][:200]
            print(json.dumps(rows[-1]), flush=True)
            for leftover in Path(tmp).glob(f"{regime.name}*"):
                if leftover.is_file():
                    leftover.unlink()
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    cols = ["customers", "acquisition", "months", "dropout", "heterogeneity", "k", "amounts"]
    cols += ["seasonality", "holdout", "churn", "exit", "chosen", "ratio"]
    cols += ["seconds"]
    print(markdown(table[[c for c in cols if c in table]]))


def markdown(table: pd.DataFrame) -> str:
    """A Markdown table (numbers to three decimals)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "" if np.isnan(value) else f"{value:.3f}".rstrip("0").rstrip(".")
        return str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + " --- |" * table.shape[1]]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(False)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
