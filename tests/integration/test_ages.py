"""Real logs at many ages (``benchmarks/ages.py``): a sample of the grid of calibration ends ×
holdouts trains and scores, and the chosen model's holdout RMSE beats the naive rate's.

CDNOW's youngest cut (three months of a single cohort) with the shortest and the longest
holdout, a middle and a late cut; apparel and grocery at a young and an old cut each. The whole
grid (13 × 4 for CDNOW), beside lifetimes, is ``python benchmarks/ages.py``.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from clv.cli import app
from conftest import APPAREL, REPO, load_script

ages = load_script("benchmarks/ages.py")
runner = CliRunner()
GROCERY = REPO / "tests" / "data" / "grocery.csv"


def in_process(args: list[str]) -> tuple[int, str]:
    result = runner.invoke(app, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


CELLS = [
    ("cdnow", "1997-03-31", 4),
    ("cdnow", "1997-03-31", 39),
    ("cdnow", "1997-09-30", 26),
    ("cdnow", "1998-03-31", 13),
    ("apparel", "2005-04-30", 13),
    ("grocery", "2006-06-30", 26),
]


@pytest.mark.parametrize(("log", "cut", "holdout"), CELLS)
def test_a_real_log_at_this_age_trains_and_scores(log, cut, holdout, tmp_path):
    source = {
        "cdnow": "cdnow",
        "apparel": str(APPAREL / "transactions.csv"),
        "grocery": str(GROCERY),
    }[log]
    if log == "apparel" and not (APPAREL / "transactions.csv").exists():
        pytest.skip(f"the shared apparel log is absent ({APPAREL})")
    row = ages.one(source, pd.Timestamp(cut), holdout, tmp_path, in_process)
    assert row["exit"] == 0, row.get("output")
    assert row["score_exit"] == 0 and row["finite"], row.get("output")
    card = json.loads(next(tmp_path.glob("m-*/scorecard.json")).read_text())
    assert card["protocol"]["calibration_end"] == cut
    assert card["protocol"]["holdout_length"] == pytest.approx(holdout, abs=0.2)
    # the naive rate forecasts 0 for one-time buyers who buy again: its deviance is infinite
    # (null); beside it and beside forecasting nothing, the chosen model's RMSE is lower
    chosen = json.loads(next(tmp_path.glob("m-*/bundle.json")).read_text())["purchase_model"]
    kind = chosen.get("limit_of") or chosen["kind"]
    rmse = card["purchases"][kind]["rmse"]
    assert 0 < row["deviance"] < float("inf")
    assert rmse < card["purchases"]["naive"]["rmse"] and rmse < card["zero_forecast"]["rmse"]
