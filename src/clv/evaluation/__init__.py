"""One scorecard: how well each model and baseline forecast a holdout (DOMAIN.md §3).

The protocol: split the log at the calibration cutoff c (:func:`choose_split`). Everything
fitted here sees only data up to c:

- purchases — each candidate BTYD model's expected purchases in (c, end] against the actual
  repeat transactions, next to the naive rate ``x / T × h``: mean Poisson deviance (the default
  selection criterion: proper for a predicted mean), RMSE, MAE, Spearman, aggregate % error;
  and the MAE of the all-zero forecast (``zero_forecast``), which MAE alone would reward;
- value — expected purchases × Gamma-Gamma expected spend against actual holdout revenue, next
  to the naive rate × the customer's mean spend: Spearman, normalized Gini, top-decile capture,
  MAE, and a decile table for the best purchase model;
- churn — "no purchase in (c, c + H]": the churn classifier trained on the window before c
  (:mod:`clv.churn`), its raw LightGBM score, and each BTYD model's P(no purchase) — BG/NBD's is
  the baseline: ROC AUC, PR AUC, Brier score, expected calibration error, reliability curve.
  When H is longer than the holdout, labels come from the holdout that exists (the scorecard
  says so in ``churn_note``).
"""

from __future__ import annotations

from clv.evaluation.choice import mix
from clv.evaluation.churn_scores import churn_window, churn_window_table, fit_churn_window
from clv.evaluation.covariate_fits import (
    COVARIATE_MIN_Z,
    covariate_effects,
    covariate_kinds,
    spend_covariate_effects,
)
from clv.evaluation.coverage import FREQUENCY_GROUPS, PIT_BINS, interval_calibration
from clv.evaluation.result import ChurnResult, Evaluation, best_model
from clv.evaluation.run import evaluate
from clv.evaluation.scores import (
    LABELS,
    NAIVE,
    SPEND,
    churn_metrics,
    conditional_expectations,
    label,
    naive_rate,
    purchase_metrics,
    value_metrics,
)
from clv.evaluation.split import (
    MIN_CUSTOMERS,
    MIN_REPEAT_BUYERS,
    REGULAR,
    Split,
    check_enough,
    choose_split,
    churn_horizon,
    describe_regularity,
    needs_log_gaps,
    observation_end,
    with_covariates,
    with_regularity_model,
)

__all__ = [
    "COVARIATE_MIN_Z",
    "FREQUENCY_GROUPS",
    "LABELS",
    "MIN_CUSTOMERS",
    "MIN_REPEAT_BUYERS",
    "NAIVE",
    "PIT_BINS",
    "REGULAR",
    "SPEND",
    "ChurnResult",
    "Evaluation",
    "Split",
    "best_model",
    "check_enough",
    "choose_split",
    "churn_horizon",
    "churn_metrics",
    "churn_window",
    "churn_window_table",
    "conditional_expectations",
    "covariate_effects",
    "covariate_kinds",
    "describe_regularity",
    "evaluate",
    "fit_churn_window",
    "interval_calibration",
    "label",
    "mix",
    "naive_rate",
    "needs_log_gaps",
    "observation_end",
    "purchase_metrics",
    "spend_covariate_effects",
    "value_metrics",
    "with_covariates",
    "with_regularity_model",
]
