"""``--engine spark`` for training: the log cleaned on Spark (local[2]) and the features built
there equal the local (pandas + DuckDB) engine's, and a whole training gives the same bundle
and the same MLflow run."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from clv.churn import behaviour_features, churn_labels, leak_free_window
from clv.cli import app
from clv.config import Config, DataConfig
from clv.data import load_transactions
from clv.data.log import TransactionLog
from clv.data.spark_log import SparkCompact, clean_spark
from clv.errors import DataValidationError
from clv.features import add_log_gaps, build_calibration_holdout, build_rfm, regularity
from clv.kpis import lapse_events, monthly_table, period_summary
from clv.training import train
from conftest import APPAREL

runner = CliRunner()


@pytest.fixture(scope="module")
def spark():
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java, which is not installed")
    from clv.spark import spark_session

    return spark_session("local[2]")


def awkward_log(customers: int = 3_000, seed: int = 11) -> pd.DataFrame:
    """A log with what cleaning must handle: same-day purchases, returns, zero amounts, a date
    decades away from the bulk, an absurd amount, tz-aware timestamps near midnight, ids with
    leading zeros; rows in no particular order."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, 200, customers)
    repeats = rng.poisson(rng.gamma(0.7, 1 / 25, customers) * (500 - first))
    owner = np.repeat(np.arange(customers), repeats)
    days = np.concatenate(
        [first, first[owner] + rng.integers(0, 500, owner.size) % (500 - first[owner])]
    )
    ids = np.concatenate([np.arange(customers), owner])
    seconds = rng.integers(0, 86_400, ids.size)
    stamps = pd.Timestamp("2021-03-01", tz="UTC") + pd.to_timedelta(days * 86_400 + seconds, "s")
    amount = np.round(rng.gamma(2.0, 20.0, ids.size), 2)
    amount[rng.random(ids.size) < 0.02] *= -1  # returns
    amount[rng.random(ids.size) < 0.01] = 0.0
    frame = pd.DataFrame({"cust": [f"{i:07d}" for i in ids], "ts": stamps, "value": amount})
    frame = pd.concat([frame, frame.iloc[:50]])  # exact duplicates: same-day purchases
    odd = pd.DataFrame(
        {
            "cust": ["0000001", "0000002"],
            "ts": pd.to_datetime(["1950-06-01", "2021-06-01"]).tz_localize("UTC"),
            "value": [10.0, 5e12],
        }
    )
    return pd.concat([frame, odd]).sample(frac=1.0, random_state=seed).reset_index(drop=True)


AWKWARD = DataConfig(
    customer_col="cust", date_col="ts", amount_col="value", timezone="America/New_York"
)


@pytest.fixture(scope="module")
def awkward(spark, tmp_path_factory):
    """The awkward log as a Parquet file, cleaned locally and on Spark from 4 partitions."""
    path = tmp_path_factory.mktemp("awkward") / "log.parquet"
    awkward_log().to_parquet(path)
    folder = path.with_suffix(".spark")
    spark.read.parquet(str(path)).repartition(4).write.parquet(str(folder))
    return load_transactions(path, AWKWARD), clean_spark(spark, str(folder), AWKWARD)


def test_cleaning_on_spark_equals_the_local_engine(awkward):
    local, on_spark = awkward
    assert isinstance(on_spark.compact, SparkCompact)  # the rows stay on Spark
    report = local.report
    # the log exercised every rule, and Spark counted each alike
    assert report.negative_amount_rows > 0 and report.zero_amount_rows > 0
    assert report.same_day_merged >= 50
    assert report.implausible_date_rows == 1 and report.implausible_amount_rows == 1
    assert on_spark.report == report
    collected = TransactionLog(on_spark.compact.collect(), report)
    pd.testing.assert_frame_equal(collected.compact.frame, local.compact.frame, rtol=1e-12)
    assert collected.compact.ids.to_pylist() == local.compact.ids.to_pylist()
    # the digest hashed on the executors, of the collected log and of the local one agree
    assert on_spark.fingerprint() == collected.fingerprint() == local.fingerprint()
    head = on_spark.first_customers(5)
    pd.testing.assert_frame_equal(head.frame, local.first_customers(5).frame)
    assert head.frame["customer_id"].nunique() == 5


def test_kpis_on_spark_equal_duckdb(awkward):
    local, on_spark = awkward
    as_of = pd.Timestamp(local.report.last_date)
    events = [
        lapse_events(log, as_of, 90).sort_values(["event", "date"], ignore_index=True)
        for log in (local, on_spark)
    ]
    pd.testing.assert_frame_equal(events[0], events[1])
    assert set(events[0]["event"]) == {"acquired", "lost", "reactivated"}
    monthly = [monthly_table(log, as_of, 90) for log in (local, on_spark)]
    assert len(monthly[0]) >= 16
    pd.testing.assert_frame_equal(monthly[0], monthly[1], check_dtype=False, rtol=1e-9)
    summaries = [
        period_summary(log, table, as_of)
        for log, table in zip((local, on_spark), monthly, strict=True)
    ]
    _close(summaries[0], summaries[1])


def test_features_built_on_spark_equal_duckdb(awkward):
    local, on_spark = awkward
    view, here = on_spark.compact, local.compact
    end = pd.Timestamp(local.report.last_date)
    cut = end - pd.Timedelta(days=120)
    for unit in ("day", "week"):

        def builds(log, unit=unit):
            yield build_rfm(log, end, unit)
            yield build_calibration_holdout(log, cut, end, unit)
            yield add_log_gaps(build_rfm(log, cut, unit), log, cut, unit)
            yield behaviour_features(log, cut, unit)

        for a, b in zip(builds(here), builds(view), strict=True):
            assert len(a) > 2_000
            pd.testing.assert_frame_equal(a, b, check_dtype=False, rtol=1e-9, atol=1e-12)
    ra, rb = regularity(here, end), regularity(view, end)
    assert ra["customers"] == rb["customers"] > 0 and math.isclose(ra["k"], rb["k"], rel_tol=1e-9)
    assert leak_free_window(here, end, 90) == leak_free_window(view, end, 90)
    ids = build_rfm(here, cut, "day")["customer_id"]
    np.testing.assert_array_equal(
        churn_labels(here, ids, cut, end), churn_labels(view, ids, cut, end)
    )


def test_a_sampled_churn_window_on_spark_equals_duckdb(awkward):
    """A window of more customers than the training sample: the sample's rows come to the
    driver (``SparkCompact.of_customers``) and give the local engine's table."""
    from clv.churn import churn_table

    local, on_spark = awkward
    end = pd.Timestamp(local.report.last_date)
    cut = end - pd.Timedelta(days=120)
    here = churn_table(local.compact, cut, end, "week", max_customers=1_000)
    there = churn_table(on_spark.compact, cut, end, "week", max_customers=1_000)
    assert here.window == there.window and here.window["training_customers"] == 1_000
    np.testing.assert_array_equal(here.labels, there.labels)
    pd.testing.assert_frame_equal(here.frame, there.frame, check_dtype=False, rtol=1e-9)


def test_a_table_name_is_a_source_and_bad_rows_name_their_partition(spark):
    frame = pd.DataFrame(
        {"customer_id": ["a", "b", None, "c"], "date": ["2020-01-01"] * 4, "amount": [1.0] * 4}
    )
    spark.createDataFrame(frame).coalesce(1).createOrReplaceTempView("orders_with_gap")
    with pytest.raises(DataValidationError, match=r"'customer_id': 1 row.*partition 0 of"):
        clean_spark(spark, "orders_with_gap", DataConfig())
    spark.createDataFrame(frame.dropna()).createOrReplaceTempView("orders")
    log = clean_spark(spark, "orders", DataConfig())
    assert (log.report.rows_read, log.report.customers) == (3, 3)
    with pytest.raises(DataValidationError, match="could not read 'no_such_table'"):
        clean_spark(spark, "no_such_table", DataConfig())
    with pytest.raises(DataValidationError, match="Missing column"):
        clean_spark(spark, "orders", DataConfig(customer_col="client"))


def _close(a: Any, b: Any, where: str = "") -> None:
    """Equal JSON trees, numbers to 1e-9 relative."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (a != a and b != b), where
    else:
        assert a == b, where


#: The settings the two trainings differ in.
DIFFERENT = (("data", "engine"), ("train", "model_dir"), ("mlflow", "registered_model"))


def _bundle(folder: Path) -> dict[str, Any]:
    data = json.loads((folder / "bundle.json").read_text())
    for volatile in ("created", "files", "registry", "checksum"):  # checksum: of the rest
        data.pop(volatile, None)
    for section, key in DIFFERENT:  # what the two runs were told differently
        data["config"][section].pop(key)
    return data


@pytest.mark.skipif(not APPAREL.is_dir(), reason="shared apparel data absent")
def test_training_on_spark_gives_the_same_bundle_and_mlflow_run(spark, tmp_path):
    runs = {}
    for engine in ("local", "spark"):
        config = Config.model_validate(
            {
                "data": {"transactions": str(APPAREL / "transactions.csv"), "engine": engine},
                "train": {"model_dir": str(tmp_path / engine), "holdout": 52},
                "mlflow": {"experiment": "spark-engine", "registered_model": f"apparel-{engine}"},
            }
        )
        runs[engine] = train(config)
    local, on_spark = runs["local"], runs["spark"]
    assert on_spark.log.report == local.log.report
    _close(_bundle(local.path), _bundle(on_spark.path))
    assert (local.path / "churn_model.txt").read_text().split("[num_threads")[0] == (
        on_spark.path / "churn_model.txt"
    ).read_text().split("[num_threads")[0]
    client = mlflow.MlflowClient()
    a, b = (client.get_run(r.run_id).data for r in (local, on_spark))
    assert a.metrics.keys() == b.metrics.keys() and len(a.metrics) > 20
    _close(a.metrics, b.metrics)
    assert b.params["data.engine"] == "spark"
    for section, key in DIFFERENT:
        a.params.pop(f"{section}.{key}"), b.params.pop(f"{section}.{key}")
    assert a.params == b.params and len(a.params) > 20


def test_prepare_on_spark_writes_the_same_tables(spark, tmp_path):
    outputs = {}
    for engine in ("local", "spark"):
        out = tmp_path / engine
        done = runner.invoke(
            app, ["prepare", "-t", "cdnow-sample", "--engine", engine, "--out", str(out)]
        )
        assert done.exit_code == 0, done.output
        outputs[engine] = out
    for name in ("transactions", "rfm", "calibration_holdout"):
        a, b = (pd.read_parquet(o / f"{name}.parquet") for o in outputs.values())
        assert len(a) > 2_000
        pd.testing.assert_frame_equal(a, b, check_dtype=False, rtol=1e-9)
    reports = [json.loads((o / "cleaning_report.json").read_text()) for o in outputs.values()]
    assert reports[0] == reports[1]
