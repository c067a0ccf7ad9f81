"""Batch scoring: forward-looking value per customer from a model bundle.

One code path for the CLI, notebooks and the MLflow model::

    from clv.predict import customer_features, load_model, score_rfm, score_transactions
    bundle = load_model("models/cdnow")
    scores = score_transactions(bundle, log, horizon=52, discount_rate=0.0019)

Output columns (value columns only when the bundle has a spend model and the input has
amounts; churn columns when the bundle has a churn model):

``customer_id, has_history, frequency, recency, T, monetary_value, p_alive,
expected_purchases, expected_purchases_low, expected_purchases_high, p_no_purchase,
expected_avg_value, clv, clv_low, clv_high, churn_probability, churn_source, value_segment``

- ``expected_purchases`` / ``p_no_purchase``: expected transactions / probability of none within
  the horizon;
- ``expected_purchases_low/high``, ``clv_low/high``: the equal-tailed predictive interval at
  the ``interval`` level (0.8 by default; 0 leaves the four columns out), from each model's exact
  predictive distribution of purchases and the Gamma-Gamma posterior of spend
  (:mod:`clv.intervals`); purchase bounds are whole counts;
- ``expected_avg_value``: Gamma-Gamma expected spend per transaction;
- ``clv``: margin × discounted expected spend over the horizon (:mod:`clv.value`);
- ``churn_probability``: calibrated probability of no purchase within the churn model's own
  horizon H (``bundle.churn.horizon``), whatever the scoring horizon;
- ``churn_source``: ``churn_model`` when it comes from the shipped churn classifier;
  ``btyd_p_no_purchase`` when the input lacks the classifier's features (an RFM table alone):
  then it is the churn model's BTYD P(no purchase) over H, uncalibrated, and a notice says so;
- ``value_segment``: the value tier, by thresholds fixed at training (:func:`define_segments`):
  a customer's segment depends on the customer and the model, never on who else is scored.

The horizon and the discount rate are in the scoring time unit (the bundle's by default), and so
are the ``recency`` and ``T`` columns of the output.
Customers listed without any transaction get the population-level prediction of a customer who
has just made a first purchase (``frequency = recency = T = 0``) and ``has_history = False``.
Work is vectorized over customers and done in chunks, reporting progress after each.
"""

from __future__ import annotations

from clv.predict.features import customer_features, model_attributes, value_model
from clv.predict.io import NUMERIC_SCORE_COLUMNS, check_finite, load_model, write_scores
from clv.predict.outputs import CHUNK_SIZE, PURCHASE_OUTPUTS, Progress
from clv.predict.scoring import (
    CHURN_FROM_BTYD,
    CHURN_FROM_MODEL,
    CHURN_FROM_PURCHASE,
    score_rfm,
    score_transactions,
    total_ranges,
)
from clv.predict.tiers import define_segments

__all__ = [
    "CHUNK_SIZE",
    "CHURN_FROM_BTYD",
    "CHURN_FROM_MODEL",
    "CHURN_FROM_PURCHASE",
    "NUMERIC_SCORE_COLUMNS",
    "PURCHASE_OUTPUTS",
    "Progress",
    "check_finite",
    "customer_features",
    "define_segments",
    "load_model",
    "model_attributes",
    "score_rfm",
    "score_transactions",
    "total_ranges",
    "value_model",
    "write_scores",
]
