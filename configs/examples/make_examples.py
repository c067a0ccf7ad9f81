"""Regenerate the synthetic example tables in this folder (deterministic; seed 7).

- ``cdnow_surveys.csv``: 1,500 CDNOW customers answered one survey a week after a purchase:
  ``nps`` (0-10; customers who buy more often answer higher) and SERVQUAL items on a 1-7 scale,
  ``expectation_<dimension>`` / ``perception_<dimension>``, with reliability the weakest.
- ``cdnow_costs.csv``: acquisition cost of 2,000 CDNOW customers (per-customer cost table).
- ``apparel_channel_costs.csv``: acquisition cost per channel of the shared apparel log's
  customers (use with ``--customers ../shared/data/apparel/customers.csv``).

Run from the repository root: ``python configs/examples/make_examples.py``.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from clv.config import SERVQUAL_DIMENSIONS, DataConfig
from clv.data import load_transactions

HERE = Path(__file__).parent
GAPS = {
    "tangibles": 0.3,
    "reliability": -1.1,
    "responsiveness": -0.6,
    "assurance": -0.1,
    "empathy": -0.4,
}


def main() -> None:
    rng = np.random.default_rng(7)
    tx = load_transactions("cdnow", DataConfig()).frame
    counts = tx.groupby("customer_id").size()
    chosen = rng.choice(counts.index.to_numpy(), size=1500, replace=False)
    picked = tx[tx["customer_id"].isin(chosen)].groupby("customer_id").sample(1, random_state=7)
    dates = (picked["date"] + pd.Timedelta(days=7)).clip(upper=pd.Timestamp("1998-06-30"))
    loyalty = np.log1p(counts.reindex(picked["customer_id"]).to_numpy())
    score = np.clip(np.round(rng.normal(5.5 + 1.4 * loyalty, 2.0)), 0, 10).astype(int)
    surveys = pd.DataFrame(
        {
            "customer_id": picked["customer_id"].to_numpy(),
            "date": dates.dt.strftime("%Y-%m-%d").to_numpy(),
            "nps": score,
        }
    )
    for dim in SERVQUAL_DIMENSIONS:
        expectation = np.clip(np.round(rng.normal(6.0, 0.7, len(surveys))), 1, 7)
        perception = np.clip(
            np.round(expectation + GAPS[dim] + rng.normal(0, 0.9, len(surveys))), 1, 7
        )
        surveys[f"expectation_{dim}"] = expectation.astype(int)
        surveys[f"perception_{dim}"] = perception.astype(int)
    surveys.sort_values(["date", "customer_id"]).to_csv(HERE / "cdnow_surveys.csv", index=False)
    costed = rng.choice(counts.index.to_numpy(), size=2000, replace=False)
    costs = pd.DataFrame(
        {"customer_id": costed, "acquisition_cost": np.round(rng.gamma(4.0, 3.0, 2000), 2)}
    )
    costs.sort_values("customer_id").to_csv(HERE / "cdnow_costs.csv", index=False)
    pd.DataFrame({"channel": [0, 1], "acquisition_cost": [35.0, 20.0]}).to_csv(
        HERE / "apparel_channel_costs.csv", index=False
    )


if __name__ == "__main__":
    main()
