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
# # 01 — Exploring a transaction log
#
# What does the log look like before any model sees it? The cleaning report, RFM distributions,
# acquisition cohorts and the repeat rate. Everything comes from `clv` itself, so the numbers are
# the ones the models use. The tests run this notebook on the 2,357-customer CDNOW sample; set
# `CLV_NOTEBOOK_SOURCE=cdnow` (or a path to your own log) for the full data.

# %%
import os

import matplotlib.pyplot as plt
import pandas as pd

from clv.config import DataConfig
from clv.data import load_transactions
from clv.features import build_rfm

SOURCE = os.environ.get("CLV_NOTEBOOK_SOURCE", "cdnow-sample")
log = load_transactions(SOURCE, DataConfig())
pd.DataFrame(log.report.rows(), columns=["rule", "rows"])

# %% [markdown]
# ## RFM over the whole log (weeks, continuous recency and T)

# %%
rfm = build_rfm(log.frame, log.frame["date"].max(), "week")
rfm.describe().T

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 3))
rfm["frequency"].clip(upper=15).plot.hist(bins=16, ax=axes[0], title="repeat purchases (15+ capped)")
rfm.loc[rfm["frequency"] > 0, "recency"].plot.hist(bins=30, ax=axes[1], title="recency of repeat buyers (weeks)")
rfm.loc[rfm["frequency"] > 0, "monetary_value"].clip(upper=200).plot.hist(
    bins=30, ax=axes[2], title="mean repeat spend (200+ capped)"
)
fig.tight_layout()

# %% [markdown]
# ## Cohorts: customers by month of first purchase

# %%
first = log.frame.groupby("customer_id")["date"].min()
cohorts = first.dt.to_period("M").value_counts().sort_index()
cohorts.plot.bar(title="new customers per month", figsize=(8, 3))
cohorts

# %% [markdown]
# ## Repeat rate
# The share of customers who came back at least once, and the share of transactions that are
# repeat purchases.

# %%
repeat_rate = (rfm["frequency"] > 0).mean()
repeat_share = rfm["frequency"].sum() / (rfm["frequency"].sum() + len(rfm))
assert 0 < repeat_rate < 1
print(f"{repeat_rate:.1%} of customers bought again; {repeat_share:.1%} of transactions are repeats")
