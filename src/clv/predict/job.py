"""The scoring job of ``clv score``: read the log as of a day, score it locally or on Spark,
and write one row per customer to a file or a PostgreSQL table."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from clv.bundle import Bundle
from clv.config import Config
from clv.data.report import CleaningReport
from clv.errors import DataValidationError
from clv.predict.features import customer_features, model_attributes, value_model
from clv.predict.io import write_scores
from clv.predict.outputs import Progress
from clv.predict.scoring import score_rfm
from clv.uris import redact


@dataclass
class ScoreRun:
    """What a scoring job produced: the scores (their totals' ranges in ``attrs``), where they
    went, the log's cleaning report, whether it had amounts, and the warnings raised."""

    scores: pd.DataFrame
    path: Path | str
    report: CleaningReport
    has_amounts: bool
    caught: list[warnings.WarningMessage]


def database_output(settings: Any) -> bool:
    """Whether the scores go to a PostgreSQL table; refuses what cannot work before any
    work is done (no table, the Spark engine, a password in the URI)."""
    from clv.uris import is_postgres

    if not is_postgres(settings.out):
        if settings.out_table is not None:
            raise DataValidationError(
                "--out-table names a table in a database: give --out postgresql://user@host/db."
            )
        return False
    from clv.data.postgres import check_uri

    check_uri(settings.out)
    if settings.out_table is None:
        raise DataValidationError(
            "Scores written to PostgreSQL need a table: add --out-table (e.g. clv_scores)."
        )
    if settings.engine == "spark":
        raise DataValidationError(
            "The Spark engine writes a Parquet folder; score to PostgreSQL with --engine local."
        )
    return True


def model_version(uri: str, bundle: Any) -> str:
    """What the ``model_version`` column of a score table says: registry name and version,
    else the model's location and training time."""
    reg = bundle.registry
    if reg:
        return f"{reg['registered_model']} v{reg['version']}"
    return f"{redact(uri)} trained {bundle.created}"


def score_job(
    settings: Config,
    bundle: Bundle,
    to_database: bool,
    progress: Progress | None = None,
    reading: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
) -> ScoreRun:
    """Score the configured log (``score.*``) with ``bundle`` and write the scores.

    ``progress`` follows the scoring of history patterns; ``reading``, a context manager
    factory yielding a progress callable, follows the reading of a large log.
    """
    from clv.data.clean import load_transactions
    from clv.data.customers import load_surveys, read_customer_list

    s = settings.score
    as_of = pd.Timestamp(s.as_of) if s.as_of else None
    with reading() if reading is not None else contextlib.nullcontext() as read:
        log = load_transactions(
            settings.data.transactions, settings.data, as_of=as_of, progress=read
        )
    report, has_amounts = log.report, log.has_amounts
    listed = read_customer_list(s.customers, settings.data.customer_col) if s.customers else None
    surveys = load_surveys(settings.data.surveys, settings.data)
    attributes = model_attributes(bundle, settings, listed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if s.engine == "spark":
            from clv.spark import score_log_with_spark

            path, ranges = score_log_with_spark(
                s.model,
                bundle,
                log,
                s.out,
                s.horizon,
                as_of=as_of,
                customers=listed,
                surveys=surveys,
                attributes=attributes,
                time_unit=s.time_unit,
                discount_rate=s.discount_rate,
                margin=s.margin,
                interval=s.interval,
                master=s.spark_master,
            )
            scores = pd.read_parquet(path)
            scores.attrs["ranges"] = ranges
            return ScoreRun(scores, path, report, has_amounts, caught)
        scoring = value_model(bundle, has_amounts)
        frame = customer_features(
            scoring, log, as_of=as_of, customers=listed, surveys=surveys, attributes=attributes
        )
        del log  # scoring reads the customers' table: free the log's rows now
        scores = score_rfm(
            scoring,
            frame,
            s.horizon,
            time_unit=s.time_unit,
            discount_rate=s.discount_rate,
            margin=s.margin,
            progress=progress,
            segments=s.segments,
            segment_rest=s.segment_rest,
            interval=s.interval,
        )
        if to_database:
            from clv.data import postgres

            postgres.write_scores(
                scores,
                s.out,
                s.out_table,
                s.if_exists,
                as_of=str(as_of.date()) if as_of else report.last_date,
                model_version=model_version(s.model, bundle),
            )
            path = f"{redact(s.out)} table {s.out_table} ({s.if_exists})"
        else:
            path = write_scores(scores, s.out)
    return ScoreRun(scores, path, report, has_amounts, caught)
