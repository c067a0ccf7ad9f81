"""A second, different log: the shared apparel data (600 customers over six years)."""

from __future__ import annotations

import pandas as pd
import pytest

from clv.config import Config, DataConfig
from clv.data import load_transactions
from clv.features import build_calibration_holdout
from clv.training import compare_purchase_models

# Plain lifetimes on continuous-time RFM, same split (shared/data/apparel/README.md).
PUBLISHED_MAE = {"BG/NBD": 0.585, "MBG/NBD": 0.554, "Pareto/NBD": 0.551}


def test_holdout_mae_on_the_apparel_split(apparel_dir):
    end = pd.Timestamp("2008-12-31")
    log = load_transactions(apparel_dir / "transactions.csv", DataConfig(), as_of=end)
    split = build_calibration_holdout(log.frame, pd.Timestamp("2007-12-31"), end, "week")
    assert len(split) == 600
    _, scores = compare_purchase_models(split, Config())
    by_name = {s.model: s for s in scores}
    for name, mae in PUBLISHED_MAE.items():
        assert by_name[name].mae == pytest.approx(mae, abs=0.005), name
        assert by_name[name].mae < by_name["naive rate"].mae
