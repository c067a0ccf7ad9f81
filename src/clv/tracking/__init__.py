"""The one module that talks to MLflow: runs, plots, the pyfunc model and the registry.

Which store and with which client settings is :mod:`clv.mlflow_store`'s job; every function
here works inside its :func:`~clv.mlflow_store.session`, so the caller's MLflow tracking URI and
environment are left as they were.

A ``clv train`` run is one parent run: the config as params, data fingerprint and package
versions as tags, the scorecard as metrics (``purchases.bgnbd.mae``, ``churn.churn_model.roc_auc``
…, and ``purchases.chosen.*`` for the chosen model), plots as PNG artifacts, the scorecard JSON,
and the bundle as a pyfunc model; one child run per candidate purchase model and one for the
churn classifier. The model is registered under ``mlflow.registered_model`` (by default
``clv-<file stem>`` of the log: :func:`registered_model_name`) and gets the alias
``champion`` when it beats the current champion re-evaluated on the same split by a paired test
(:mod:`clv.promotion`), or there is none; else ``challenger``. The decision, both numbers and
the test statistic are tags ``registry.*`` on the run and on the model version.
"""

from __future__ import annotations

from clv.tracking.datasets import TrainedRun, log_datasets, source_name
from clv.tracking.metrics import flatten, mlflow_name, scorecard_metrics
from clv.tracking.registry import model_versions, no_such_alias, promote, registered_model_name
from clv.tracking.runs import MONITOR_SECTIONS, log_kpi_report, log_monitoring, log_training_run
from clv.tracking.store import (
    CHECK_TIMEOUT,
    EXPERIMENT_NOTE,
    TrackingStoreError,
    check_store,
    prepare_logging,
    prepare_store,
    store_errors,
    use_experiment,
)

__all__ = [
    "CHECK_TIMEOUT",
    "EXPERIMENT_NOTE",
    "MONITOR_SECTIONS",
    "TrackingStoreError",
    "TrainedRun",
    "check_store",
    "flatten",
    "log_datasets",
    "log_kpi_report",
    "log_monitoring",
    "log_training_run",
    "mlflow_name",
    "model_versions",
    "no_such_alias",
    "prepare_logging",
    "prepare_store",
    "promote",
    "registered_model_name",
    "scorecard_metrics",
    "source_name",
    "store_errors",
    "use_experiment",
]
