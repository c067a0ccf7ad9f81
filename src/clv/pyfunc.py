"""The MLflow pyfunc model of a clv bundle (logged "from code": nothing is pickled).

Input: a customer frame from :func:`clv.predict.customer_features` — at least ``customer_id,
frequency, recency, T`` (+ ``monetary_value``; + churn features for ``churn_probability``), in
the bundle's time unit. Output: the columns of :func:`clv.predict.score_rfm`. Optional params:
``horizon``, ``time_unit``, ``discount_rate``, ``margin`` (defaults from the training config).
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd


class ClvModel(mlflow.pyfunc.PythonModel):
    """Scores customers with the bundle stored in the model's ``bundle`` artifact."""

    def load_context(self, context: Any) -> None:
        """Load the bundle from the model's artifacts."""
        from clv.bundle import load_bundle

        self.bundle = load_bundle(context.artifacts["bundle"])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Score ``model_input`` (see the module docstring)."""
        from clv.predict import score_rfm

        defaults = self.bundle.config.get("score", {})
        params = params or {}
        unit = params.get("time_unit") or defaults.get("time_unit") or None
        return score_rfm(
            self.bundle,
            model_input,
            horizon=float(params.get("horizon") or defaults.get("horizon", 52.0)),
            time_unit=unit,
            discount_rate=float(params.get("discount_rate", defaults.get("discount_rate", 0.0))),
            margin=float(params.get("margin", defaults.get("margin", 1.0))),
            segments=defaults.get("segments"),
            segment_rest=defaults.get("segment_rest", "rest"),
        )
