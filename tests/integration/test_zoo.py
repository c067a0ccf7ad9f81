"""A sample of the zoo of logs (``benchmarks/zoo.py``): every ordinary log trains.

- Property: a log whose calibration period has at least 100 customers and 20 repeat buyers
  trains (exit 0) and scores finite; a smaller one ends in a ClvError that says so. The sample
  crosses every axis of the zoo (size, acquisition, age, dropout, heterogeneity, regularity,
  amounts, seasonality, horizons); ``python benchmarks/zoo.py`` runs the whole zoo.
- Accuracy: on simulated populations of 5,000 Poisson (k = 1) buyers, at every crossing of
  dropout (none, low, high) and rate heterogeneity (none, high), the shipped forecast's holdout
  Poisson deviance is within 2 % of the oracle's (the true model with the population's
  parameters). Before the fit tried a second start, the no-heterogeneity, low-dropout log was
  4.2 % off: MBG/NBD stopped at a local maximum 409 log-likelihood units below the truth. Where
  lifetimes returns a forecast on the same split, the shipped one is at least as good.
"""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from clv.cli import app
from clv.features import build_calibration_holdout
from conftest import load_script

zoo = load_script("benchmarks/zoo.py")
ages = load_script("benchmarks/ages.py")
runner = CliRunner()


def in_process(args: list[str]) -> tuple[int, str]:
    result = runner.invoke(app, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback is a bug, never an answer
    return result.exit_code, result.output


SAMPLE = zoo.sample(18, seed=35, max_customers=1500)


@pytest.mark.parametrize("regime", SAMPLE, ids=[r.name for r in SAMPLE])
def test_every_ordinary_log_trains_and_scores_finite(regime, tmp_path):
    row = zoo.run(regime, tmp_path, in_process)
    enough = row["calibration_customers"] >= 100 and row["repeat_buyers"] >= 20
    if enough:
        assert row["exit"] == 0, row.get("output")
        assert row["score_exit"] == 0, row.get("output")
        assert row["finite"]
    else:
        assert row["exit"] == 1, row
        text = " ".join(str(row["output"]).split())
        assert "too few to fit a purchase model on" in text
        assert f"has {row['calibration_customers']:,} customers" in text


def test_the_sample_crosses_every_axis():
    """The sample is not one corner of the zoo: each axis takes several values, and both
    outcomes (trains / too small) are exercised."""
    for axis in ("acquisition", "dropout", "heterogeneity", "amounts", "seasonality"):
        assert len({getattr(r, axis) for r in SAMPLE}) >= 2, axis
    assert len({r.k for r in SAMPLE}) >= 4 and len({r.months for r in SAMPLE}) >= 4
    assert min(r.customers for r in SAMPLE) < 100 <= max(r.customers for r in SAMPLE)


ORACLE = [  # every dropout × heterogeneity crossing of Poisson (k = 1) buyers
    zoo.Regime(customers=5000, months=24, dropout=d, heterogeneity=h, k=1, seed=1)
    for d in ("none", "low", "high")
    for h in ("none", "high")
]


@pytest.mark.parametrize("regime", ORACLE, ids=[r.name for r in ORACLE])
def test_the_shipped_forecast_is_within_2_percent_of_the_oracle(regime, tmp_path):
    """…and at least as good as lifetimes' best on the same split wherever lifetimes returns
    a forecast (on these logs its fits often stop at the same edges without an answer)."""
    row = zoo.run(regime, tmp_path, in_process)
    assert row["exit"] == 0, row.get("output")
    assert row["ratio"] <= 1.02, row
    log = zoo.generate(regime)
    end = log["date"].max()
    cal = build_calibration_holdout(log, end - pd.Timedelta(weeks=regime.holdout), end, "week")
    theirs = ages.lifetimes_deviances(cal, float(regime.holdout))
    if theirs:
        assert row["deviance"] <= min(theirs.values()) * (1 + 1e-3), theirs


def _regularity_model(folder):
    path = folder / "regular.yaml"
    path.write_text("train:\n  regularity_model: true\n")
    return ("--config", str(path))


def test_regular_buyers_are_within_2_percent_of_the_oracle_with_the_regularity_model(tmp_path):
    """Erlang-3 buyers: the classic three miss the oracle by 12 % (the zoo's table); with
    ``train.regularity_model`` the split line's measured regularity brings MBG/CNBD-k among the
    candidates, and the shipped forecast is within 2 % of the oracle."""
    regime = zoo.Regime(customers=5000, months=24, dropout="low", k=3, seed=1)
    row = zoo.run(regime, tmp_path, in_process, extra=_regularity_model(tmp_path))
    assert row["exit"] == 0, row.get("output")
    assert row["chosen"] in ("mbgcnbd", "stacked") and row["ratio"] <= 1.02, row


def test_regular_buyers_who_never_leave_get_mbg_cnbd_at_its_no_dropout_limit(tmp_path):
    """Erlang-3 buyers at one rate who never leave: MBG/CNBD-k's fit runs to a → 0 and r, α →
    ∞. That edge is shipped, named (P(alive) 1, every customer the same rate), and forecasts
    as the oracle does. Before, the fit was dropped and the others' Poisson limits shipped, 4 %
    behind the oracle; earlier still its series at those shapes asked for 48 GiB."""
    import json

    regime = zoo.Regime(customers=2000, months=24, dropout="none", heterogeneity="none", k=3)
    row = zoo.run(regime, tmp_path, in_process, extra=_regularity_model(tmp_path))
    assert row["exit"] == 0, row.get("output")
    assert row["chosen"] == "mbgcnbd" and row["ratio"] <= 1.02, row
    bundle = json.loads((tmp_path / f"{regime.name}-model" / "bundle.json").read_text())
    assert "no_dropout" in bundle["purchase_model"]["homogeneous"]
