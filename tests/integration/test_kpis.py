"""Business metrics (DOMAIN.md §4): worked examples, hand-made logs, the report and its CLI."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from clv.bundle import Bundle
from clv.churn import SURVEY_FEATURES, survey_features, train_churn_model
from clv.cli import app
from clv.cli.kpis import nps_line
from clv.config import Config, DataConfig, KpiConfig
from clv.data import clean_transactions, read_surveys
from clv.errors import DataValidationError
from clv.kpis import (
    acquisition_costs,
    build_report,
    monthly_table,
    period_summary,
    servqual,
    simple_clv,
)
from clv.models.fitting import fit_purchase_model
from clv.models.gamma_gamma import fit_spend_model
from clv.nps import nps
from clv.predict import score_transactions

EXAMPLES = Path(__file__).resolve().parents[2] / "configs" / "examples"
runner = CliRunner()


def test_worked_examples():
    assert simple_clv(1_000, 10, 1_000) == 9_000
    assert nps([10] * 70 + [8] * 15 + [0] * 15) == 55
    assert nps([9, 10]) == 100 and nps([0, 6]) == -100 and nps([7, 8]) == 0


def test_nps_out_of_range_names_the_rows():
    frame = pd.DataFrame(
        {"customer_id": ["a", "b", "c"], "date": ["2020-01-01"] * 3, "nps": [5, 11, 7.5]}
    )
    with pytest.raises(
        DataValidationError,
        match=r"2 answer\(s\) outside the whole numbers 0–10, at row\(s\) \[2, 3\]",
    ):
        read_surveys(frame)


def test_servqual_gaps_and_weighted_gap_by_hand():
    frame = pd.DataFrame({"customer_id": ["a", "b"], "date": pd.to_datetime(["2020-01-01"] * 2)})
    gaps = {
        "tangibles": 1.0,
        "reliability": -2.0,
        "responsiveness": 0.0,
        "assurance": 0.5,
        "empathy": -1.0,
    }
    for dim, gap in gaps.items():
        frame[f"expectation_{dim}_1"] = [6, 6]
        frame[f"expectation_{dim}_2"] = [5, 7]
        frame[f"perception_{dim}"] = [6 + gap, 6 + gap]
    table, weighted = servqual(frame, KpiConfig().servqual_weights)
    assert table.set_index("dimension")["gap"].to_dict() == pytest.approx(gaps)
    assert weighted == pytest.approx((11 * 1 + 32 * -2 + 22 * 0 + 19 * 0.5 + 16 * -1) / 100)
    with pytest.raises(ValueError, match="sum to 100"):
        KpiConfig(servqual_weights={"tangibles": 50, "reliability": 40})


@pytest.fixture
def small_log():
    rows = [  # customer, purchase days
        ("a", ["2020-01-05", "2020-02-10", "2020-06-01"]),
        ("b", ["2020-01-20"]),  # lost on 2020-03-20 with a 60-day window
        ("c", ["2020-03-03", "2020-03-04"]),
        ("d", ["2020-05-15"]),
    ]
    tx = pd.DataFrame(
        [(c, d, 10.0) for c, days in rows for d in days], columns=["customer_id", "date", "amount"]
    )
    return clean_transactions(tx, DataConfig())


def test_monthly_table_by_hand(small_log):
    table = monthly_table(small_log, pd.Timestamp("2020-06-30"), inactivity_days=60).set_index(
        "month"
    )
    assert table["new"].to_dict() == {
        "2020-01": 2,
        "2020-02": 0,
        "2020-03": 1,
        "2020-04": 0,
        "2020-05": 1,
        "2020-06": 0,
    }
    # a: last 02-10 → lost 04-10, back on 06-01 (lost again only after 07-31); b lost 03-20; c lost 05-03
    assert table["lost"].to_dict() == {
        "2020-01": 0,
        "2020-02": 0,
        "2020-03": 1,
        "2020-04": 1,
        "2020-05": 1,
        "2020-06": 0,
    }
    assert table.loc["2020-03", "active_start"] == 2 and table.loc["2020-03", "active_end"] == 2
    assert table.loc["2020-03", "churn_rate"] == pytest.approx(1 / 2)
    assert table["reactivated"].to_dict()["2020-06"] == 1  # a came back
    assert table.loc["2020-06", "active_end"] == 2  # a and d (c lost in May)
    assert table.loc["2020-03", "repeat_purchase_rate"] == 1.0  # c bought twice in March
    assert table.loc["2020-01", "repeat_purchase_rate"] == 0.0
    period = period_summary(small_log, table.reset_index(), pd.Timestamp("2020-06-30"), months=6)
    average = ((table["active_start"] + table["active_end"]) / 2).mean()
    assert period["churn_rate"] == pytest.approx(3 / average)
    assert period["revenue"] == 70.0


def test_acquisition_costs_per_customer_and_per_channel():
    acquired = pd.Index(["a", "b", "c"])
    cac, channels = acquisition_costs(
        pd.DataFrame({"customer_id": ["a", "b", "z"], "acquisition_cost": [10.0, 30.0, 99.0]}),
        None,
        acquired,
    )
    assert cac == 20.0 and channels is None
    customers = pd.DataFrame({"customer_id": ["a", "b", "c"], "channel": [0, 0, 1]})
    cac, channels = acquisition_costs(
        pd.DataFrame({"channel": [0, 1], "acquisition_cost": [30.0, 60.0]}), customers, acquired
    )
    assert cac == pytest.approx(40.0) and channels["customers"].tolist() == [2, 1]
    with pytest.raises(DataValidationError, match="no acquisition_cost for channel"):
        acquisition_costs(
            pd.DataFrame({"channel": [0], "acquisition_cost": [1.0]}), customers, acquired
        )


def test_report_numbers_agree_with_the_model(sample_log, sample_split):
    bundle = Bundle(
        fit_purchase_model("bgnbd", sample_split, "week"), fit_spend_model(sample_split), {}, {}
    )
    report = build_report(sample_log, Config(), bundle=bundle)
    scores = score_transactions(bundle, sample_log, horizon=12, time_unit="month")
    assert report.forecast["expected_revenue"].sum() == pytest.approx(scores["clv"].sum(), rel=1e-9)
    # the band of the running total after 12 months (sums by pattern, the months' ranges on
    # threads) is the range of the scored customers' 12-month CLV (sums by customer)
    last, clv_range = report.forecast.iloc[-1], scores.attrs["ranges"]["clv"]
    for band, name in (("cumulative_low", "low"), ("cumulative_high", "high")):
        assert last[band] == pytest.approx(clv_range[name], rel=1e-9)
    assert clv_range["parameter_sd"] > 0 and clv_range["process_sd"] > 0
    assert report.segments["share_of_customers"].sum() == pytest.approx(1.0)
    assert report.segments["share_of_revenue"].sum() == pytest.approx(1.0)
    assert report.segments["segment"].tolist() == ["top", "high", "rest"]
    assert report.summary["segments_by"] == "model CLV over 12 months"


def test_survey_features_are_leak_free_and_reach_the_classifier(sample_log):
    rng = np.random.default_rng(0)
    ids = sample_log.frame["customer_id"].unique()
    surveys = read_surveys(
        pd.DataFrame(
            {
                "customer_id": ids,
                "date": pd.Timestamp("1997-03-01"),
                "nps": rng.integers(0, 11, len(ids)),
            }
        )
    )
    later = surveys.assign(date=pd.Timestamp("1997-08-01"), nps=10.0)
    features = survey_features(pd.concat([surveys, later]), pd.Timestamp("1997-06-30"))
    assert (features["days_since_survey"] == 121).all()  # the August answers are not seen
    seen = features.set_index("customer_id")["nps_latest"].sort_index()
    np.testing.assert_array_equal(
        seen.to_numpy(), surveys.set_index("customer_id")["nps"].sort_index().to_numpy()
    )
    model = train_churn_model(
        sample_log.frame,
        pd.Timestamp("1997-06-30"),
        pd.Timestamp("1997-12-29"),
        "week",
        surveys=surveys,
    )
    assert set(SURVEY_FEATURES) <= set(model.features) and set(SURVEY_FEATURES) <= set(
        model.attributes
    )
    assert set(SURVEY_FEATURES) <= set(model.validation["feature_importance_gain"])


def test_kpis_command_writes_a_self_contained_report_and_logs_it(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = runner.invoke(
        app,
        [
            "kpis",
            "-t",
            "cdnow-sample",
            "--surveys",
            str(EXAMPLES / "cdnow_surveys.csv"),
            "--costs",
            str(EXAMPLES / "cdnow_costs.csv"),
            "-o",
            str(tmp_path / "r"),
            "--log-to-mlflow",
            "--tracking-uri",
            uri,
        ],
    )
    assert result.exit_code == 0, result.output
    html = (tmp_path / "r" / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 5
    assert "src='http" not in html and "href='http" not in html  # nothing fetched when opened
    summary = json.loads((tmp_path / "r" / "kpis.json").read_text())
    assert summary["simple_clv"]["clv_to_cac"] > 0 and "nps" in summary and "servqual" in summary
    assert summary["servqual"]["weighted_gap"] < 0  # the example's reliability falls short
    client = mlflow.tracking.MlflowClient(uri)
    mlflow.set_tracking_uri(uri)
    run = mlflow.search_runs(experiment_names=["clv"]).iloc[0]
    names = {Path(a.path).name for a in client.list_artifacts(run["run_id"], "kpis")}
    assert {"report.html", "kpis.json", "monthly.csv"} <= names
    assert run["metrics.kpi.period.churn_rate"] == pytest.approx(summary["period"]["churn_rate"])


def test_the_report_a_training_logs_equals_the_report_built_alone(tmp_path, monkeypatch):
    """`clv train` hands the KPI report the RFM table it built for the refits; the report is
    the one :func:`build_report` makes on its own from the same log and models."""
    from clv.data.clean import load_configured_log
    from clv.training import build_kpis, train

    monkeypatch.chdir(tmp_path)  # the run's artifacts (./mlruns beside a sqlite store)
    config = Config().with_overrides(
        {
            "data.transactions": "cdnow-sample",
            "train.candidates": ["bgnbd"],
            "train.model_dir": str(tmp_path / "m"),
            "mlflow.tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        }
    )
    result = train(config)
    assert result.kpis is not None and result.kpis.forecast is not None
    alone = build_kpis(
        load_configured_log(config),
        config,
        Bundle(result.bundle.purchase, result.bundle.spend, config.to_dict(), fingerprint={}),
        None,
    )
    # DuckDB adds up revenue in parallel: sums agree to rounding, not to the bit
    trained, own = pd.json_normalize(result.kpis.summary), pd.json_normalize(alone.summary)
    pd.testing.assert_frame_equal(trained, own, rtol=1e-12)
    for name in ("forecast", "segments", "monthly"):
        got, expected = getattr(result.kpis, name), getattr(alone, name)
        pd.testing.assert_frame_equal(got, expected, rtol=1e-12, obj=name)


def test_an_nps_period_without_answers_says_so_and_writes_null(tmp_path):
    """Survey answers all before the report period: the NPS is "none", the period and the
    survey's dates are named, and ``kpis.json`` is strict JSON with ``null`` (no NaN token)."""
    surveys = pd.read_csv(EXAMPLES / "cdnow_surveys.csv")
    surveys["date"] = "1996-03-01"  # a year before the log starts
    surveys.to_csv(tmp_path / "old_surveys.csv", index=False)
    out = tmp_path / "r"
    args = ["kpis", "-t", "cdnow-sample", "--surveys", str(tmp_path / "old_surveys.csv")]
    result = runner.invoke(app, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "none: no survey answers fall in 1997-07-01 .." in " ".join(result.output.split())
    raw = (out / "kpis.json").read_text()
    assert "NaN" not in raw and "Infinity" not in raw
    summary = json.loads(raw, parse_constant=lambda name: pytest.fail(f"{name} in kpis.json"))
    assert summary["nps"]["nps"] is None and summary["nps"]["responses"] == 0
    assert summary["nps"]["period"] == ["1997-07-01", "1998-06-30"]
    assert summary["nps"]["survey_dates"] == ["1996-03-01", "1996-03-01"]
    assert nps_line(summary["nps"]) == (
        "none: no survey answers fall in 1997-07-01 .. 1998-06-30 (the survey's answers run "
        "from 1996-03-01 to 1996-03-01)"
    )
    assert "no survey answers fall in this period" in (out / "report.html").read_text()
