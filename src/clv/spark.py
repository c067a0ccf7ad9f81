"""Batch scoring on Spark with the same model: ``clv score --engine spark``.

Features (RFM, churn features) are built with DuckDB by :func:`clv.predict.customer_features` —
the same SQL as the local engine, so both engines see identical inputs; DuckDB streams a large
log on one machine and only one row per customer reaches Spark. Spark then applies the MLflow
pyfunc model (``mlflow.pyfunc.spark_udf``, ``env_manager="local"``) partition by partition; value
segments come from the thresholds stored in the bundle, so each row's segment is the same as
the local engine's whatever the partitioning. Output is a Parquet folder, written beside the
destination and renamed into place.

The session is local (``local[2]``) unless ``score.spark_master`` names a cluster; it binds to
127.0.0.1 (``SPARK_LOCAL_IP``), has the UI off and Arrow on.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from clv.config import DEFAULT_INTERVAL
from clv.outputs import check_replaceable_folder, not_of_spark
from clv.resources import environment
from clv.tables import leftover_name, remove_leftovers, replace_dir

#: Environment of the Spark processes unless the user set it: bound to the loopback interface,
#: workers running this Python.
SPARK_ENV = {
    "SPARK_LOCAL_IP": "127.0.0.1",
    "PYSPARK_PYTHON": sys.executable,
    "PYSPARK_DRIVER_PYTHON": sys.executable,
}


def spark_session(master: str = "local[2]") -> Any:
    """A Spark session bound to the loopback interface, UI and console progress bars off,
    Arrow on, times in UTC.

    :data:`SPARK_ENV` is set while the session starts (the JVM and the worker command are fixed
    then) and the caller's environment put back afterwards. Spark's own log shows errors only
    (its warnings are about its internals, e.g. a window without partitions, which clv's
    coding of customers uses on purpose).
    """
    from pyspark.sql import SparkSession

    with environment(SPARK_ENV):
        session = _build(SparkSession, master)
    session.sparkContext.setLogLevel("ERROR")
    return session


def local_cores(master: str) -> int | None:
    """The cores of a local master (``local[N]``, ``local[*]``, ``local``); None for a
    cluster, whose own settings apply."""
    import re

    found = re.fullmatch(r"local(?:\[(\d+|\*)(?:,\s*\d+)?\])?", master.strip())
    if found is None:
        return None
    cores = found.group(1)
    if cores is None:  # "local": one core
        return 1
    return (os.cpu_count() or 1) if cores == "*" else int(cores)


def shuffle_partitions(master: str) -> int | None:
    """Partitions of a shuffle for a local master: twice its cores; None for a cluster.
    Spark's default of 200 costs about 14 s per aggregation of a small log in ``local[2]``
    against 0.5 s with 4."""
    cores = local_cores(master)
    return None if cores is None else max(2, 2 * cores)


def driver_memory(master: str, environ: dict[str, str] | None = None) -> str | None:
    """The JVM heap of a local master's driver (which is also its executor): a quarter of the
    machine's memory, at least 1 GB, unless ``CLV_SPARK_DRIVER_MEMORY`` says (e.g. ``8g``);
    None for a cluster. Spark's default of 1 GB ran out at a million customers, where the
    churn features of two windows are collected at once."""
    environ = os.environ if environ is None else environ
    if local_cores(master) is None:
        return None
    if environ.get("CLV_SPARK_DRIVER_MEMORY"):
        return environ["CLV_SPARK_DRIVER_MEMORY"]
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    return f"{max(1024, total // 4 // 2**20)}m"


def _build(SparkSession: Any, master: str) -> Any:
    builder = SparkSession.builder
    partitions = shuffle_partitions(master)
    if partitions is not None:
        builder = builder.config("spark.sql.shuffle.partitions", str(partitions))
    memory = driver_memory(master)
    if memory is not None:  # takes effect when the JVM starts (the first session)
        # results come back to the same JVM: the per-customer tables of 10M customers are
        # more than Spark's default cap of 1 GB on them
        builder = builder.config("spark.driver.memory", memory).config(
            "spark.driver.maxResultSize", memory
        )
    return (
        builder.master(master)
        .appName("clv")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )


def pyfunc_model_uri(model: str, directory: Path, signature: Any) -> str:
    """An MLflow model URI for ``model``: MLflow URIs as they are; a bundle folder is saved as a
    pyfunc model (from code, nothing pickled; ``signature`` declares the params) under
    ``directory``."""
    if model.startswith(("models:/", "runs:/")):
        return model
    import mlflow.pyfunc

    import clv

    path = directory / "model"
    mlflow.pyfunc.save_model(
        str(path),
        python_model=str(Path(clv.__file__).parent / "pyfunc_entry.py"),
        artifacts={"bundle": str(Path(model).resolve())},
        code_paths=[str(Path(clv.__file__).parent)],
        signature=signature,
    )
    return str(path)


def _result_schema(columns: list[str]) -> str:
    types = {
        "customer_id": "string",
        "has_history": "boolean",
        "frequency": "long",
        "value_segment": "string",
        "churn_source": "string",
    }
    return ", ".join(f"`{c}` {types.get(c, 'double')}" for c in columns)


def score_with_spark(
    model: str,
    features: pd.DataFrame,
    output_columns: list[str],
    out: str | Path,
    params: dict[str, Any],
    master: str = "local[2]",
) -> Path:
    """Score a feature frame on Spark and write the scores as a Parquet folder at ``out``.

    Parameters
    ----------
    model : str
        A bundle folder, ``models:/NAME@alias`` or ``runs:/ID/model``.
    features : pandas.DataFrame
        From :func:`clv.predict.customer_features` (numeric columns as float64).
    output_columns : list of str
        The columns the model returns (those of :func:`clv.predict.score_rfm`).
    out : str or Path
        Destination folder.
    params : dict
        ``horizon``, ``time_unit``, ``discount_rate``, ``margin``, ``interval`` for the model.
    master : str
        Spark master URL.
    """
    import mlflow.pyfunc
    from mlflow.models import infer_signature
    from pyspark.sql import functions as sf

    from clv.predict import check_finite

    out = Path(out)
    spark = spark_session(master)
    with tempfile.TemporaryDirectory() as tmp:
        signature = infer_signature(features.head(5), None, params=params)
        uri = pyfunc_model_uri(model, Path(tmp), signature)
        udf = mlflow.pyfunc.spark_udf(
            spark,
            uri,
            result_type=_result_schema(output_columns),
            env_manager="local",
            params=params,
        )
        frame = spark.createDataFrame(features)
        scored = frame.select(
            udf(sf.struct(*[sf.col(f"`{c}`") for c in features.columns])).alias("s")
        )
        scored = scored.select("s.*").select(*output_columns)
        check_replaceable_folder(out, not_of_spark, "a Spark score folder", option="--out")
        remove_leftovers(out)
        staging = leftover_name(out, "spark")
        try:
            scored.write.parquet(str(staging))
            check_finite(pd.read_parquet(staging), f"The scores for {out}")
            replace_dir(staging, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return out


def score_log_with_spark(
    model: str,
    bundle: Any,
    log: Any,
    out: str | Path,
    horizon: float,
    as_of: pd.Timestamp | None = None,
    customers: pd.DataFrame | None = None,
    surveys: pd.DataFrame | None = None,
    time_unit: str | None = None,
    discount_rate: float = 0.0,
    margin: float = 1.0,
    interval: float = DEFAULT_INTERVAL,
    master: str = "local[2]",
    attributes: pd.DataFrame | None = None,
) -> tuple[Path, dict[str, dict[str, float]]]:
    """The Spark twin of :func:`clv.predict.score_transactions`: same features, same model.

    Returns
    -------
    path : pathlib.Path
        The Parquet folder of scores.
    ranges : dict
        The totals' ranges (:func:`clv.predict.total_ranges`), taken on the driver from the
        same features: the sums over customers need all of them, and they cost a pass over the
        distinct patterns.

    Raises
    ------
    BundleError
        For a bundle of an older clv without stored segment thresholds (its segments would
        depend on Spark's partitions): retrain it.
    """
    from clv.errors import BundleError
    from clv.predict import customer_features, score_rfm, total_ranges

    if not bundle.segments:
        raise BundleError(
            "This bundle has no stored segment thresholds (made by an older clv); the Spark "
            "engine needs them. Retrain the model with this clv."
        )

    features = customer_features(
        bundle, log, as_of=as_of, customers=customers, surveys=surveys, attributes=attributes
    )
    numeric = features.select_dtypes("number").columns
    features = features.astype({c: "float64" for c in numeric})
    params = {
        "horizon": float(horizon),
        "time_unit": time_unit or bundle.time_unit,
        "discount_rate": float(discount_rate),
        "margin": float(margin),
        "interval": float(interval),
    }
    probe = score_rfm(
        bundle,
        features.head(1),
        horizon,
        params["time_unit"],
        discount_rate,
        margin,
        interval=interval,
    )
    path = score_with_spark(model, features, list(probe.columns), out, params, master)
    ranges = total_ranges(
        bundle, features, horizon, params["time_unit"], discount_rate, margin, interval
    )
    return path, ranges
