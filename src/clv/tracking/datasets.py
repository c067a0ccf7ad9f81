"""The training log as MLflow dataset inputs (the full log and its calibration part), with
the source, digest, schema and profile."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlparse

from clv.uris import is_postgres, redact

if TYPE_CHECKING:
    from clv.bundle import Bundle
    from clv.config import Config
    from clv.evaluation import Evaluation
    from clv.kpis import KpiReport


class TrainedRun(Protocol):
    """What :func:`log_training_run` logs: a finished training
    (:class:`clv.training.TrainResult`)."""

    bundle: Bundle
    path: Path
    evaluation: Evaluation
    log: Any
    kpis: KpiReport | None
    stage_log: list[str]


def log_datasets(run_id: str, result: TrainedRun, config: Config) -> None:
    """Log the run's transaction log as MLflow dataset inputs: the full log (context
    ``training``) and its calibration part (context ``calibration``), each with its source
    (credentials redacted), a digest from the log's fingerprint, its schema, and a profile of
    rows, customers and dates."""
    import json

    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.tracking import MlflowClient

    from clv.data.compact import AMOUNT, CUSTOMER, DATE, day_number

    log, fingerprint = result.log, result.bundle.fingerprint
    source = str(config.data.transactions)
    name = source_name(config)
    where = {"uri": redact(source)}
    if is_postgres(source):
        where |= {"table": config.data.table} if config.data.table else {"query": config.data.query}
    columns = [{"type": "string", "name": CUSTOMER}, {"type": "datetime", "name": DATE}]
    if log.has_amounts:
        columns.append({"type": "double", "name": AMOUNT})
    schema = json.dumps({"mlflow_colspec": columns})
    cut = result.evaluation.split.calibration_end
    before = log.compact.run(
        "SELECT COUNT(*) AS n FROM tx WHERE day <= $cut", {"cut": day_number(cut)}
    )
    parts = {
        "training": (name, fingerprint["sha256"], fingerprint),
        "calibration": (
            f"{name} to {cut.date()}",
            hashlib.sha256(f"{fingerprint['sha256']} {cut.date()}".encode()).hexdigest(),
            {
                "transactions": int(before["n"].iloc[0]),
                "customers": len(result.evaluation.calibration),
                "first_date": fingerprint["first_date"],
                "last_date": str(cut.date()),
            },
        ),
    }
    inputs = []
    for context, (title, digest, counts) in parts.items():
        profile = {k: counts[k] for k in ("transactions", "customers", "first_date", "last_date")}
        dataset = Dataset(
            name=title,
            digest=digest[:32],
            source_type="postgresql" if is_postgres(source) else "local",
            source=json.dumps(where),
            schema=schema,
            profile=json.dumps({"num_rows": profile["transactions"], **profile}),
        )
        inputs.append(DatasetInput(dataset, [InputTag("mlflow.data.context", context)]))
    MlflowClient().log_inputs(run_id, datasets=inputs)


def source_name(config: Config) -> str:
    """A short name of the log: a file's stem (``cdnow`` for the embedded log); for PostgreSQL
    the database and the table, or a digest of the query (``shop-sales.orders``)."""
    source = str(config.data.transactions)
    if is_postgres(source):
        database = urlparse(source).path.strip("/") or "postgres"
        query = hashlib.sha256(str(config.data.query).encode()).hexdigest()[:8]
        return f"{database}-{config.data.table or 'query-' + query}"
    return Path(source.rstrip("/")).name.split(".")[0] or "log"
