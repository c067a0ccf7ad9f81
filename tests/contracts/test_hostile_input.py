"""Odd files and implausible values: each is refused or excluded by a named rule, never a
traceback and never a NaN in an output.

The logs are the CDNOW sample with one row made implausible, files in the shapes people have
(compressed, other delimiters), survey and cost tables with their own column names, and
property-based logs (ties, duplicates, one-day customers, unicode and numeric-looking ids,
extreme but valid amounts).
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from clv.cli import app
from clv.config import Config, DataConfig
from clv.data import (
    clean_parquet,
    clean_transactions,
    load_costs,
    load_surveys,
    load_transactions,
    read_embedded,
)
from clv.errors import ClvError, DataValidationError, ModelFitError, ScoreError
from clv.predict import check_finite, score_transactions, write_scores
from clv.tables import read_table, write_table

runner = CliRunner()
CDNOW = DataConfig(date_format="%Y%m%d")


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return read_embedded("cdnow-sample")


def _with(raw: pd.DataFrame, row: int, **values) -> pd.DataFrame:
    out = raw.copy()
    for column, value in values.items():
        out[column] = out[column].astype(object)
        out.loc[row, column] = value
    return out


def _accounts_for_every_row(report, rows: int) -> None:
    excluded = report.negative_amount_rows * (report.negative_amount_policy == "exclude")
    excluded += report.zero_amount_rows * (report.zero_amount_policy == "exclude")
    assert report.rows_read == rows
    assert rows == (
        report.rows_used
        + excluded
        + report.rows_after_as_of
        + report.implausible_date_rows
        + report.implausible_amount_rows
    )
    assert report.transactions == report.rows_used - report.same_day_merged


# --- implausible values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "kind", "shown"),
    [
        ({"date": "29990101"}, "date", "'29990101'"),  # no timestamp holds it
        ({"date": "19000101"}, "date", "1900-01-01"),  # a typo far before the log
        ({"amount": 1e300}, "amount", "1e+300"),
        ({"amount": math.inf}, "amount", "inf"),
        ({"amount": 3e9}, "amount", "3000000000.0"),  # 10^8 × the median purchase
    ],
)
def test_an_implausible_row_is_excluded_by_a_named_rule(raw, change, kind, shown):
    clean = clean_transactions(raw, CDNOW)
    log = clean_transactions(_with(raw, 5, **change), CDNOW)
    report = log.report
    counts = (report.implausible_date_rows, report.implausible_amount_rows)
    assert counts == ((1, 0) if kind == "date" else (0, 1))
    _accounts_for_every_row(report, len(raw))
    note = report.implausible_note()
    assert "customer '00021'" in note and shown in note, note
    assert (report.first_date, report.last_date) == (
        clean.report.first_date,
        clean.report.last_date,
    )
    assert log.compact.frame["amount"].max() == clean.compact.frame["amount"].max()
    with pytest.raises(DataValidationError, match=rf"implausible {kind}.*customer '00021'"):
        clean_transactions(
            _with(raw, 5, **change), CDNOW.model_copy(update={"implausible": "error"})
        )


def test_the_window_and_the_ratio_are_settings(raw):
    typo = _with(raw, 5, date="19900101")  # 7 years before the log
    assert clean_transactions(typo, CDNOW).report.implausible_date_rows == 0
    narrow = CDNOW.model_copy(update={"date_window_years": 5})
    assert clean_transactions(typo, narrow).report.implausible_date_rows == 1
    big = _with(raw, 5, amount=50_000.0)  # ~2,000 × the median
    assert clean_transactions(big, CDNOW).report.implausible_amount_rows == 0
    strict = CDNOW.model_copy(update={"max_amount_ratio": 1000})
    assert clean_transactions(big, strict).report.implausible_amount_rows == 1
    off = CDNOW.model_copy(update={"date_window_years": None, "max_amount_ratio": None})
    report = clean_transactions(
        _with(_with(raw, 5, date="19000101"), 6, date="29990101"), off
    ).report
    assert report.implausible_date_rows == 1  # only the date no timestamp can hold
    assert report.first_date == "1900-01-01"


def test_a_small_log_is_not_stretched_by_its_own_typo():
    rows = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b", "c", "c", "d"],
            "date": [
                "2020-01-05",
                "2020-03-01",
                "2020-02-01",
                "1920-02-01",
                "2020-04-01",
                "2020-05-01",
            ],
            "amount": [10.0, 12.0, 9.0, 11.0, 10.0, 8.0],
        }
    )
    report = clean_transactions(rows, DataConfig()).report
    assert report.implausible_date_rows == 1 and report.first_date == "2020-01-05"


def test_chunked_parquet_applies_the_same_rules(raw, tmp_path):
    bad = _with(_with(_with(raw, 5, date="19000101"), 9, amount=1e300), 11, date="29990101")
    bad["amount"] = bad["amount"].astype(float)
    path = write_table(bad, tmp_path / "log.parquet")
    whole = clean_transactions(bad, CDNOW)
    chunked = clean_parquet(path, CDNOW, chunk_rows=1000)
    assert chunked.report.to_dict() | {"implausible_examples": []} == whole.report.to_dict() | {
        "implausible_examples": []
    }
    assert chunked.fingerprint() == whole.fingerprint()
    assert (chunked.report.implausible_date_rows, chunked.report.implausible_amount_rows) == (2, 1)


def test_no_score_file_holds_a_non_finite_number(tmp_path):
    scores = pd.DataFrame(
        {"customer_id": ["a", "b", "c"], "p_alive": [0.5, 0.4, 0.3], "clv": [1.0, np.nan, np.inf]}
    )
    with pytest.raises(ScoreError, match=r"'clv': 2 customer\(s\), e.g. 'b'"):
        write_scores(scores, tmp_path / "s.csv")
    assert list(tmp_path.iterdir()) == []
    check_finite(scores.drop(columns="clv"))


# --- files as they come ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "sep"),
    [
        ("log.csv.gz", ","),
        ("log.csv.zst", ","),
        ("log.csv", ";"),
        ("log.tsv", "\t"),
        ("log.txt", "|"),
    ],
)
def test_compressed_and_delimited_logs_read_like_the_plain_csv(raw, tmp_path, name, sep):
    plain = clean_transactions(raw, CDNOW)
    raw.to_csv(tmp_path / name, sep=sep, index=False)
    log = load_transactions(tmp_path / name, CDNOW)
    assert log.fingerprint() == plain.fingerprint()
    explicit = load_transactions(tmp_path / name, CDNOW.model_copy(update={"delimiter": sep}))
    assert explicit.fingerprint() == plain.fingerprint()


def test_score_files_may_be_compressed(tmp_path):
    frame = pd.DataFrame({"customer_id": ["007", "x"], "clv": [1.5, 2.0]})
    for name in ("s.csv.gz", "s.csv.zst"):
        write_table(frame, tmp_path / name)
        back = read_table(tmp_path / name, string_columns=("customer_id",))
        pd.testing.assert_frame_equal(back, frame)


def test_an_unknown_suffix_names_what_is_read(tmp_path):
    (tmp_path / "log.xlsx").write_text("x")
    with pytest.raises(DataValidationError, match=r"'.xlsx'.*\.csv.*\.gz/\.zst.*\.parquet"):
        read_table(tmp_path / "log.xlsx")


def test_survey_and_cost_columns_are_mapped_like_the_log(tmp_path):
    surveys = pd.DataFrame(
        {"cust": ["00001", "00002"], "answered_on": ["1997-05-01", "1997-06-01"], "ltr": [9, 3]}
    )
    surveys.to_csv(tmp_path / "surveys.csv", index=False)
    config = DataConfig(
        survey_customer_col="cust", survey_date_col="answered_on", survey_nps_col="ltr"
    )
    table = load_surveys(tmp_path / "surveys.csv", config)
    assert list(table["customer_id"]) == ["00001", "00002"] and list(table["nps"]) == [9, 3]
    with pytest.raises(
        DataValidationError, match=r"'cust_id' \(data.survey_customer_col\).*--survey-col"
    ):
        load_surveys(tmp_path / "surveys.csv", DataConfig(survey_customer_col="cust_id"))

    costs = pd.DataFrame({"acq_channel": ["web", "store"], "cac": [12.0, 30.0]})
    costs.to_csv(tmp_path / "costs.csv", index=False)
    kpis = Config().kpis.model_copy(
        update={"costs_channel_col": "acq_channel", "costs_amount_col": "cac"}
    )
    mapped = load_costs(tmp_path / "costs.csv", "customer_id", kpis)
    assert list(mapped.columns) == ["channel", "acquisition_cost"]
    with pytest.raises(DataValidationError, match=r"missing column 'acquisition_cost'.*--cost-col"):
        load_costs(tmp_path / "costs.csv", "customer_id", Config().kpis)


def test_the_cli_maps_survey_and_cost_columns(tmp_path):
    """The example survey and cost tables with their columns renamed, mapped back with
    --survey-col / --cost-col: the same KPI report as the originals."""
    examples = Path(__file__).resolve().parents[2] / "configs" / "examples"
    surveys = pd.read_csv(examples / "cdnow_surveys.csv", dtype={"customer_id": str})
    surveys.rename(columns={"customer_id": "cust", "date": "when", "nps": "ltr"}).to_csv(
        tmp_path / "surveys.csv", index=False
    )
    costs = pd.read_csv(examples / "cdnow_costs.csv", dtype={"customer_id": str})
    costs.rename(columns={"customer_id": "who", "acquisition_cost": "cac"}).to_csv(
        tmp_path / "costs.csv", index=False
    )
    common = ["kpis", "-t", "cdnow-sample"]
    result = runner.invoke(
        app,
        [
            *common,
            "--surveys",
            str(examples / "cdnow_surveys.csv"),
            "--costs",
            str(examples / "cdnow_costs.csv"),
            "--out",
            str(tmp_path / "original"),
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        [
            *common,
            "--surveys",
            str(tmp_path / "surveys.csv"),
            "--survey-col",
            "customer_id=cust",
            "--survey-col",
            "date=when",
            "--survey-col",
            "nps=ltr",
            "--costs",
            str(tmp_path / "costs.csv"),
            "--cost-col",
            "customer_id=who",
            "--cost-col",
            "acquisition_cost=cac",
            "--out",
            str(tmp_path / "mapped"),
        ],
    )
    assert result.exit_code == 0, result.output
    original, mapped = (
        json.loads((tmp_path / name / "kpis.json").read_text()) for name in ("original", "mapped")
    )
    assert "nps" in mapped and mapped["simple_clv"]["clv_to_cac"] > 0
    # DuckDB's parallel sums of doubles may differ in the last bit between two runs
    assert _numbers(mapped) == pytest.approx(_numbers(original), rel=1e-12)
    assert _texts(mapped) == _texts(original)
    result = runner.invoke(app, [*common, "--survey-col", "score=ltr"])
    assert result.exit_code == 2 and "ROLE=COLUMN" in result.output


# --- degrade, don't die ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def degrade_log(raw, tmp_path_factory) -> Path:
    """Five copies of: 20 CDNOW customers and one buying every day for two years: BG/NBD does not converge on
    the calibration period (its a, b run to 0), MBG/NBD and Pareto/NBD do. Twelve customers
    who arrive in the holdout and spend from 0.01 to 10,000 a purchase make the whole log's
    spend too dispersed for Gamma-Gamma (q ≤ 1, no finite mean, with and without the
    penalizer), while it converges on the calibration period."""
    ids = sorted(raw["customer_id"].unique())[:20]
    days = pd.date_range("1997-01-01", "1998-12-31", freq="D").strftime("%Y%m%d")
    daily = pd.DataFrame({"customer_id": "99999", "date": days, "amount": 10.0})
    late = pd.DataFrame(
        {
            "customer_id": np.repeat([f"8{i:04d}" for i in range(12)], 2),
            "date": np.tile(["19981101", "19981201"], 12),
            "amount": np.repeat(np.geomspace(0.01, 10_000, 12), 2),
        }
    )
    path = tmp_path_factory.mktemp("degrade") / "daily.csv"
    one = pd.concat([raw[raw["customer_id"].isin(ids)], daily, late])
    # five copies under other ids: 165 customers, enough for a fit (evaluation.MIN_CUSTOMERS),
    # and every maximum-likelihood estimate the same as one copy's (a copy scales the likelihood)
    copies = [one.assign(customer_id=one["customer_id"] + f"-{i}") for i in range(5)]
    pd.concat(copies).to_csv(path, index=False)
    return path


def test_a_candidate_that_does_not_converge_is_dropped_not_fatal(degrade_log, tmp_path):
    model_dir = tmp_path / "m"
    result = runner.invoke(
        app, ["train", "-t", str(degrade_log), "--model-dir", str(model_dir), "--no-mlflow"]
    )
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "Dropped (did not converge; see the notices): BG/NBD, Ensemble" in output
    assert "Notice: BG/NBD dropped: BG/NBD did not converge" in output
    assert "Skipped the Gamma-Gamma refit on the whole log" in output  # an optional stage
    manifest = json.loads((model_dir / "bundle.json").read_text())
    assert set(manifest["scorecard"]["dropped"]) == {"bgnbd", "ensemble"}
    assert set(manifest["scorecard"]["skipped"]) == {"spend_refit"}
    assert manifest["purchase_model"]["kind"] in ("mbgnbd", "pareto", "ggomnbd", "mbgcnbd")
    assert manifest["spend_model"] is None
    out = tmp_path / "s.csv"
    result = runner.invoke(
        app, ["score", "-m", str(model_dir), "-t", str(degrade_log), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "clv" not in pd.read_csv(out).columns


def test_the_dropped_candidates_are_tagged_on_the_run(degrade_log, tmp_path):
    from mlflow.tracking import MlflowClient

    result = runner.invoke(
        app, ["train", "-t", str(degrade_log), "--model-dir", str(tmp_path / "m")]
    )
    assert result.exit_code == 0, result.output
    run_id = re.search(r"MLflow run ([0-9a-f]{32})", result.output)[1]
    tags = MlflowClient().get_run(run_id).data.tags
    assert tags["dropped"] == "bgnbd, ensemble"
    assert tags["dropped.bgnbd"].startswith("BG/NBD did not converge")


def test_the_run_fails_only_when_every_candidate_fails(degrade_log, tmp_path):
    config = Config().with_overrides(
        {
            "train.candidates": ["bgnbd"],
            "mlflow.enabled": False,
            "train.model_dir": str(tmp_path / "m"),
        }
    )
    from clv.training import train

    with pytest.raises(ModelFitError, match=r"No candidate purchase model converged.*BG/NBD"):
        train(config.with_overrides({"data.transactions": str(degrade_log)}))
    assert not (tmp_path / "m").exists()


# --- property-based logs --------------------------------------------------------------------

IDS = st.sampled_from(
    ["007", "7", "7.0", "1e3", "00042", "Ñoño", "客户-1", "😀", "a b", "x,y", "-1", "NaN-like"]
)


@st.composite
def logs(draw) -> pd.DataFrame:
    """A raw log: 4–12 customers, 1–6 purchases each, some on one day (ties), some rows
    duplicated, times of day, amounts from cents to millions, zeros and returns."""
    customers = draw(st.lists(IDS, min_size=4, max_size=12, unique=True))
    rows = []
    for customer in customers:
        start = draw(st.integers(0, 300))
        for _ in range(draw(st.integers(1, 6))):
            day = start + draw(st.integers(0, 400))
            seconds = draw(st.integers(0, 86_399))
            amount = draw(
                st.one_of(
                    st.floats(0.01, 5e6, allow_nan=False),
                    st.sampled_from([0.0, -25.0, 0.01, 1e6]),
                )
            )
            when = pd.Timestamp("2021-01-01") + pd.Timedelta(days=day, seconds=seconds)
            rows.append((customer, when.isoformat(sep=" "), round(amount, 2)))
            if draw(st.booleans()) and draw(st.booleans()):
                rows.append(rows[-1])  # an exact duplicate
    return pd.DataFrame(rows, columns=["customer_id", "date", "amount"])


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(raw=logs())
def test_any_log_trains_and_scores_or_fails_with_clvs_own_error(raw, tmp_path_factory):
    from clv.data import RunInputs
    from clv.training import train

    folder = tmp_path_factory.mktemp("hyp")
    raw.to_csv(folder / "log.csv", index=False)
    config = Config().with_overrides(
        {
            "data.transactions": str(folder / "log.csv"),
            "mlflow.enabled": False,
            "kpis.in_train": False,
            "train.model_dir": str(folder / "m"),
            "train.holdout": 8,
        }
    )
    try:
        log = load_transactions(folder / "log.csv", config.data)
    except ClvError:
        return
    _accounts_for_every_row(log.report, len(raw))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bundle = train(config, inputs=RunInputs(log, None, None)).bundle
    except ClvError:
        return
    scores = score_transactions(bundle, log, 26)
    check_finite(scores)
    assert len(scores) == log.report.customers
    first = write_scores(scores, folder / "a.csv")
    second = write_scores(score_transactions(bundle, log, 26), folder / "b.csv")
    assert first.read_bytes() == second.read_bytes()
    assert set(pd.read_csv(first, dtype={"customer_id": str})["customer_id"]) == set(
        log.compact.to_frame()["customer_id"]
    )
    assert replace(bundle, registry={}).to_dict()["data_fingerprint"] == log.fingerprint()


def test_expected_purchases_stay_numbers_where_the_closed_form_fails():
    """Found by the property test above: a BG/NBD fit with r and α in the millions (no
    heterogeneity in the purchase rate) made ₂F₁ overflow and every expected purchase NaN. The
    integral that ₂F₁ sums, taken by quadrature where the closed form is not finite, agrees with
    the closed form where both exist and reaches the no-heterogeneity limit where it does not."""
    from scipy.special import hyp2f1

    from clv.models.beta_geo import (
        bg_bracket_by_quadrature as _bg_bracket_by_quadrature,
    )
    from clv.models.beta_geo import bg_expected_purchases as _bg_expected_purchases

    for r, alpha, a, b in [(0.24, 4.4, 0.79, 2.4), (2.0, 10.0, 0.3, 0.5), (0.5, 3.0, 1.5, 8.0)]:
        for x, T in [(0, 30.0), (5, 40.0), (40, 70.0)]:
            c = a + b + x - 1
            z = 26 / (alpha + T + 26)
            closed = (c / (a - 1)) * (1 - (1 - z) ** (r + x) * hyp2f1(r + x, b + x, c, z))
            assert _bg_bracket_by_quadrature(r + x, alpha + T, a, b + x, 26.0) == pytest.approx(
                closed, rel=1e-9
            )
    params = {"r": 13612166.7, "alpha": 367528592.2, "a": 4.27e-5, "b": 1963618.47}
    x, t_x, T = np.array([0.0, 2.0, 3.0]), np.array([0.0, 44.6, 52.4]), np.array([50.0, 44.6, 65.0])
    for modified in (False, True):
        expected = _bg_expected_purchases(params, modified, 26.0, x, t_x, T)
        # nobody drops out (a / (a + b) ≈ 2e-11) and λ ≈ r / α for everyone
        assert expected == pytest.approx(26 * params["r"] / params["alpha"], rel=1e-5)


def _leaves(tree, prefix=""):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, f"{prefix}{key}.")
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from _leaves(value, f"{prefix}{i}.")
    else:
        yield prefix, tree


def _numbers(tree) -> dict:
    return {k: v for k, v in _leaves(tree) if isinstance(v, float)}


def _texts(tree) -> dict:
    return {k: v for k, v in _leaves(tree) if not isinstance(v, float)}


def test_duckdb_out_of_memory_names_the_limit_to_raise(tmp_path, monkeypatch):
    """A CLV_DUCKDB_MEMORY_LIMIT too small for DuckDB to work at all (8MB: not even the
    same-day merge's sort of 2M rows can run) is a clear error naming that setting, not a
    DuckDB traceback, and leaves no output behind."""
    rng = np.random.default_rng(3)
    n = 2_000_000
    raw = pd.DataFrame(
        {
            "customer_id": rng.integers(0, 50_000, n).astype(str),
            "date": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 700, n), "D"),
            "amount": rng.gamma(2.0, 20.0, n),
        }
    )
    path = tmp_path / "log.parquet"
    raw.to_parquet(path, index=False)
    monkeypatch.setenv("CLV_DUCKDB_MEMORY_LIMIT", "8MB")
    out = tmp_path / "prepared"
    result = runner.invoke(app, ["prepare", "-t", str(path), "--out", str(out)])
    assert result.exit_code != 0
    assert "CLV_DUCKDB_MEMORY_LIMIT" in result.output and "8MB" in result.output
    assert "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())
