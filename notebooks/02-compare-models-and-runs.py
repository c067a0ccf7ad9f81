# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 — Comparing models and runs
#
# Two training runs with different settings, logged to MLflow, then pulled back with
# `mlflow.search_runs` and compared: holdout MAE of each purchase model against the naive rate,
# value and churn metrics, and the registry's champion/challenger decision. The runs go to a
# throw-away store here (set `MLFLOW_TRACKING_URI` to compare your own runs instead).

# %%
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow

from clv.config import Config
from clv.training import train

SOURCE = os.environ.get("CLV_NOTEBOOK_SOURCE", "cdnow-sample")
store = Path(tempfile.mkdtemp())
uri = os.environ.get("CLV_NOTEBOOK_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
base = Config().with_overrides({
    "data.transactions": SOURCE,
    "train.calibration_end": "1997-09-30" if SOURCE == "cdnow-sample" else None,
    "mlflow.tracking_uri": uri,
    "mlflow.experiment": "notebook-comparison",
    "mlflow.registered_model": "clv-notebook",
    "train.model_dir": str(store / "all-models"),
})
first = train(base)
second = train(base.with_overrides({"train.candidates": ["bgnbd"], "train.model_dir": str(store / "bgnbd")}))
first.registry, second.registry

# %% [markdown]
# ## The runs, as MLflow stores them

# %%
mlflow.set_tracking_uri(uri)
runs = mlflow.search_runs(experiment_names=["notebook-comparison"], filter_string="tags.chosen_model != ''")
columns = ["tags.mlflow.runName", "params.train.candidates", "metrics.purchases.chosen.mae",
           "metrics.purchases.naive.mae", "metrics.value.chosen.normalized_gini",
           "metrics.churn.churn_model.roc_auc", "tags.registry.alias"]
runs[columns]

# %% [markdown]
# ## Every candidate of the first run against the naive baseline

# %%
card = first.bundle.scorecard["purchases"]
names = list(card)
fig, ax = plt.subplots(figsize=(6, 3))
ax.bar(names, [card[n]["mae"] for n in names])
ax.set(ylabel="holdout MAE of purchases", title="lower is better")
assert min(card[n]["mae"] for n in names if n != "naive") < card["naive"]["mae"]

# %%
child_runs = mlflow.search_runs(
    experiment_names=["notebook-comparison"],
    filter_string=f"tags.mlflow.parentRunId = '{first.run_id}'",
)
child_runs[["tags.mlflow.runName", "metrics.mae", "metrics.log_likelihood"]]
