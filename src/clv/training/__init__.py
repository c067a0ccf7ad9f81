"""Training: evaluate on a holdout, choose, refit on the whole log, ship a bundle.

1. Clean the log (:mod:`clv.data`); read customer attributes when ``train.customers`` is set.
2. Evaluate (:mod:`clv.evaluation`): split at the calibration cutoff, fit every candidate
   purchase model, Gamma-Gamma and a churn classifier on data up to the cutoff, and score the
   holdout against the baselines. The purchase model with the lowest holdout
   ``train.selection_metric`` (mean Poisson deviance by default) is chosen.
3. Refit the chosen purchase model and Gamma-Gamma on the whole log, and retrain the churn
   classifier on the latest leak-free window (features up to ``end − H``, labels from
   ``(end − H, end]``; :mod:`clv.churn`), with BG/NBD features from a fit on the whole log.
   Both churn trainings (step 2's and this one) start at once, in turn, on a worker thread
   (:mod:`clv.background`): their LightGBM runs on the core that the single-threaded steps
   leave idle (same models). What needs no classifier is done before waiting for one: the
   shipped window's training table (when the worker has not begun it) before the first, the
   KPI report, the value tiers, the log's fingerprint, MLflow's set-up and the evaluation's
   figures before the second. The fingerprint is queued on the worker after the trainings, and
   the main line computes it itself if the worker has not begun it
   (:class:`clv.background.Handoff`).
4. Write the bundle (:mod:`clv.bundle`). With MLflow enabled (:mod:`clv.tracking`) the bundle is
   staged beside ``train.model_dir``, logged and registered, then put in place as a whole: at
   ``train.model_dir`` when it became the champion (so that folder, which ``clv score`` uses by
   default, always holds the champion), else at ``<model_dir>-v<version>``. Without MLflow it
   replaces ``train.model_dir`` as a whole. If the tracking store fails mid-run, the bundle is
   kept at ``<model_dir>-unlogged`` and the error says so.

The whole run holds ``train.model_dir``'s lock (:mod:`clv.locks`): a second run writing the same
folder waits ``train.lock_wait`` seconds, then stops naming the first. With MLflow, the tracking
store is checked before any work (:func:`clv.tracking.check_store`).

A candidate purchase model that does not converge is dropped (:mod:`clv.evaluation`); when the
chosen model does not converge on the whole log, the next best candidate is shipped instead.
Both are notices of the run; the run fails only when no candidate converges.
"""

from __future__ import annotations

from clv.training.guard import run_guard
from clv.training.kpi_report import build_kpis
from clv.training.result import TrainResult
from clv.training.run import train
from clv.training.ship import challenger_dir, input_example, unlogged_dir

__all__ = [
    "TrainResult",
    "build_kpis",
    "challenger_dir",
    "input_example",
    "run_guard",
    "train",
    "unlogged_dir",
]
