"""NPS bands in one place: the KPI report and the churn model's survey feature agree."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clv.churn import survey_features
from clv.kpis import nps_table
from clv.nps import band_shares, is_detractor, is_promoter, nps


def test_every_answer_falls_in_exactly_one_band():
    answers = np.arange(11)
    promoters, detractors = is_promoter(answers), is_detractor(answers)
    passives = ~promoters & ~detractors
    assert answers[promoters].tolist() == [9, 10]
    assert answers[passives].tolist() == [7, 8]
    assert answers[detractors].tolist() == [0, 1, 2, 3, 4, 5, 6]
    shares = band_shares(answers)
    assert sum(shares.values()) == pytest.approx(100.0)
    assert nps(answers) == pytest.approx(shares["promoters_pct"] - shares["detractors_pct"])


def test_monthly_table_matches_a_hand_count_and_tolerates_no_answers():
    surveys = pd.DataFrame(
        {
            "customer_id": list("abcde"),
            "date": pd.to_datetime(
                ["2020-01-05", "2020-01-20", "2020-01-31", "2020-02-02", "2021-01-01"]
            ),
            "nps": [10.0, 8.0, 3.0, 9.0, 0.0],
        }
    )
    table, overall = nps_table(surveys, pd.Timestamp("2020-02-29"), months=12)
    assert table["month"].tolist() == ["2020-01", "2020-02"]
    assert table["responses"].tolist() == [3, 1]
    assert table["nps"].tolist() == pytest.approx([0.0, 100.0])  # (1 − 1) / 3; 1 / 1
    assert overall["responses"] == 4 and overall["nps"] == pytest.approx(25.0)
    empty, none = nps_table(surveys, pd.Timestamp("2019-12-31"))  # no answer yet
    assert empty.empty and list(empty.columns) == list(table.columns)
    assert none["responses"] == 0 and none["nps"] is None  # null in kpis.json, not NaN
    assert none["period"] == ["2019-01-01", "2019-12-31"]


def test_the_churn_feature_flags_the_report_s_detractors():
    surveys = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "date": pd.to_datetime(["2020-01-01"] * 3),
            "nps": [6.0, 7.0, 10.0],
        }
    )
    features = survey_features(surveys, pd.Timestamp("2020-02-01"))
    assert features["nps_detractor"].tolist() == [1.0, 0.0, 0.0]
    assert (features["nps_detractor"] == is_detractor(surveys["nps"])).all()
