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
# # 03 — Scoring a customer list with segments
#
# Train a bundle (or load yours with `clv.predict.load_model`), then score a list of customers —
# some with history, one brand new — over the next 26 weeks with a 10 %/year discount rate and a
# 30 % margin, and look at the value segments.

# %%
import os
import tempfile

import pandas as pd

from clv.config import Config, DataConfig
from clv.data import load_transactions
from clv.predict import load_model, score_transactions
from clv.training import train

SOURCE = os.environ.get("CLV_NOTEBOOK_SOURCE", "cdnow-sample")
folder = tempfile.mkdtemp()
config = Config().with_overrides({
    "data.transactions": SOURCE, "mlflow.enabled": False, "train.model_dir": folder,
})
train(config)
bundle = load_model(folder)
log = load_transactions(SOURCE, DataConfig())

# %%
ids = log.frame["customer_id"].drop_duplicates().sample(200, random_state=1).tolist()
customers = pd.DataFrame({"customer_id": [*ids, "brand-new"]})
scores = score_transactions(
    bundle, log, horizon=26, customers=customers, discount_rate=0.10 / 52, margin=0.3
)
scores.head()

# %% [markdown]
# The new customer gets the population-level prediction of someone who has just bought.

# %%
scores[scores["customer_id"] == "brand-new"].T

# %% [markdown]
# ## Segments: who holds the value, and how likely they are to churn

# %%
summary = scores.groupby("value_segment").agg(
    customers=("customer_id", "size"), clv=("clv", "sum"), churn=("churn_probability", "mean")
)
summary["share_of_clv"] = summary["clv"] / summary["clv"].sum()
assert summary.loc["top", "share_of_clv"] > 0.1
summary.sort_values("clv", ascending=False)
