"""`clv score --engine spark` equals the local engine on 100k+ customers (Spark in local mode)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from clv.cli import app

runner = CliRunner()
N = 100_000


def simulated_log(n: int, seed: int = 3) -> pd.DataFrame:
    """A vectorized log: first purchases over 13 weeks, Poisson repeats until a geometric dropout."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, 91, n)
    rate = rng.gamma(0.5, 1 / 20, n)  # purchases per day
    repeats = np.minimum(rng.poisson(rate * (540 - first)), rng.geometric(0.3, n) - 1)
    owner = np.repeat(np.arange(n), repeats)
    offsets = rng.integers(1, 540, owner.size) % (540 - first[owner]) + first[owner]
    days = np.concatenate([first, offsets])
    ids = np.concatenate([np.arange(n), owner])
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:06d}" for i in ids],
            "date": pd.Timestamp("2020-01-01") + pd.to_timedelta(days, unit="D"),
            "amount": np.round(rng.gamma(3.0, 12.0, ids.size), 2),
        }
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java, which is not installed")
    tmp = tmp_path_factory.mktemp("spark")
    log = tmp / "log.parquet"
    simulated_log(N).to_parquet(log)
    bundle = tmp / "bundle"
    result = runner.invoke(
        app, ["train", "-t", str(log), "--model-dir", str(bundle), "--no-mlflow"]
    )
    assert result.exit_code == 0, result.output
    return tmp, log, bundle


def test_spark_scores_equal_local_scores(setup, monkeypatch):
    tmp, log, bundle = setup
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    local, spark = tmp / "local.parquet", tmp / "spark.parquet"
    common = [
        "score",
        "-m",
        str(bundle),
        "-t",
        str(log),
        "--horizon",
        "26",
        "--discount-rate",
        "0.002",
    ]
    done = runner.invoke(app, [*common, "-o", str(local)])
    assert done.exit_code == 0, done.output
    printed = [done.output]
    done = runner.invoke(
        app, [*common, "-o", str(spark), "--engine", "spark", "--spark-master", "local[2]"]
    )
    assert done.exit_code == 0, done.output
    printed.append(done.output)
    # both engines print the totals of purchases and CLV with the same ranges
    ranges = [[line for line in out.splitlines() if "% range" in line] for out in printed]
    assert len(ranges[0]) == 2 and ranges[1] == ranges[0], ranges
    assert spark.is_dir() and not (tmp / ".spark.parquet.spark-tmp").exists()
    a = pd.read_parquet(local).sort_values("customer_id", ignore_index=True)
    b = pd.read_parquet(spark).sort_values("customer_id", ignore_index=True)
    assert len(a) == len(b) >= N
    assert a.columns.tolist() == b.columns.tolist()
    assert "churn_probability" in a and "clv" in a
    for column in a.columns:
        if a[column].dtype.kind == "f":
            np.testing.assert_allclose(b[column], a[column], rtol=0, atol=1e-9, err_msg=column)
        else:
            assert (a[column].astype(str) == b[column].astype(str)).all(), column
    assert Path(spark / "_SUCCESS").is_file()
