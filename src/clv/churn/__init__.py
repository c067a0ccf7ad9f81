"""Churn classifier: LightGBM on behavioural features, checked against the BTYD churn score.

**Label.** A customer *churns* over a horizon H when they make no purchase in (cutoff, cutoff + H].

**Leak-free windows.** Labels need the future, so a classifier is always trained one window
back: features use transactions up to ``c − H`` and labels come from ``(c − H, c]``. The model
that is *evaluated* on ``(c, c + H]`` (features up to c) is trained that way with c the
calibration cutoff, and sees nothing after c. The model that is *shipped* for scoring is retrained
on the latest window: features up to ``end − H``, labels from ``(end − H, end]``.

**Features** (:func:`churn_features`, DuckDB SQL, all as of the feature cutoff): RFM, time since
the last purchase, tenure, purchase counts and spend in the last 30/90/180/365 days,
inter-purchase time mean and spread, spend trend (last purchase ÷ mean purchase), and the BG/NBD
outputs P(alive), expected purchases and P(no purchase) over H, from a BG/NBD fitted on the same
data. Customer attributes (extra columns of a customer table) join as they are; text columns
become pandas categoricals, which LightGBM splits on natively.

**Which score ships.** Five-fold out-of-fold predictions on the training window (on a stratified
sample of at most ``train.churn_max_customers`` customers) compare LightGBM,
blends of it with the BG/NBD P(no purchase) (weights 0.75, 0.5, 0.25) and the BG/NBD score alone,
by ROC AUC. A challenger must beat the BG/NBD score significantly (one-sided 5 %, z > 1.645
with DeLong's standard error of the paired AUC difference): on small logs the differences are
mostly noise (on the 600-customer apparel log a blend "won" validation by 0.004 and then lost
the holdout), and the BG/NBD score is the safer default. Among the eligible, the best ships (the
simpler on a tie); the decision and the numbers are recorded. This uses only the training window,
never the evaluation holdout. P(alive), P(no purchase), expected purchases, time since the last
purchase and the recent purchase counts carry monotone constraints.

**Calibration.** Fitted on the out-of-fold predictions, in one of two forms, cross-validated over
the same five folds and recorded in ``validation["calibration"]`` (log losses and the test):

- ``platt_btyd`` (preferred): a logistic regression on the logits of the chosen score *and* of
  the BG/NBD P(no purchase);
- ``platt``: a logistic regression on the logit of the chosen score alone (Platt scaling;
  monotone, so the ranking and ROC AUC are the chosen score's).

Why the preference: a LightGBM score is compressed at its ends, and hundreds of customers share
its lowest leaves. Platt scaling maps it monotonically, so on CDNOW all of the 183 heaviest
buyers got 0.1145 — on the evaluation holdout such customers churned at 1.5 % — however sure the
purchase model was that they would buy. The BG/NBD term breaks those ties with the purchase
history and lets the probability move towards 0 and 1 where that history is decisive. Plain
Platt ships only when its cross-validated log loss (a proper score) is lower by a significant
margin (paired, one-sided 5 %). An isotonic map was tried too: better calibrated in the tails on
the CDNOW holdout, but its steps tie customers (−0.005 ROC AUC on the CDNOW sample) and it lost
on cross-validated log loss in the training window.
"""

from __future__ import annotations

from clv.churn.calibration import CALIBRATIONS, PLATT_RIDGE, calibrated
from clv.churn.delong import paired_auc_test
from clv.churn.features import (
    HISTORY_SHARE,
    MIN_CUSTOMERS,
    MONOTONE,
    SHORTEST_SHARE,
    SURVEY_FEATURES,
    WINDOWS_DAYS,
    behaviour_blocks,
    behaviour_features,
    churn_features,
    churn_labels,
    leak_free_window,
    scores_by_block,
    survey_features,
    with_customer_features,
    with_model_features,
)
from clv.churn.model import FROM_PURCHASE_MODEL, PREDICT_ROWS, ChurnModel, without_classifier
from clv.churn.training import (
    ChurnTable,
    churn_table,
    fit_churn_table,
    train_churn_model,
    train_churn_window,
    window_table,
)

__all__ = [
    "CALIBRATIONS",
    "FROM_PURCHASE_MODEL",
    "HISTORY_SHARE",
    "MIN_CUSTOMERS",
    "MONOTONE",
    "PLATT_RIDGE",
    "PREDICT_ROWS",
    "SHORTEST_SHARE",
    "SURVEY_FEATURES",
    "WINDOWS_DAYS",
    "ChurnModel",
    "ChurnTable",
    "behaviour_blocks",
    "behaviour_features",
    "calibrated",
    "churn_features",
    "churn_labels",
    "churn_table",
    "fit_churn_table",
    "leak_free_window",
    "paired_auc_test",
    "scores_by_block",
    "survey_features",
    "train_churn_model",
    "train_churn_window",
    "window_table",
    "with_customer_features",
    "with_model_features",
    "without_classifier",
]
