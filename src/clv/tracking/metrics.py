"""The scorecard as MLflow metrics: flattened keys, names MLflow accepts, and the
``purchases.chosen.*`` aliases."""

from __future__ import annotations

import re
from typing import Any

import numpy as np


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts into dotted keys (lists are kept as values).

    >>> flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3})
    {'a.b': 1, 'a.c.d': 2, 'e': 3}
    """
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def mlflow_name(key: str) -> str:
    """``key`` with the characters MLflow's metric and param names reject written ``_`` (a
    covariate's level may hold any text)."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", key)


def scorecard_metrics(scorecard: dict[str, Any], chosen: str) -> dict[str, float]:
    """The scorecard's numbers as MLflow metrics, with ``purchases.chosen.*`` aliases."""
    names = (
        "purchases",
        "zero_forecast",
        "value",
        "churn",
        "intervals",
        "regularity",
        "selection",  # each candidate's mean loss over the holdout windows and windows won
        "stacking",  # the stacked mixture's weights and the holdout log scores
    )
    sections = {k: scorecard[k] for k in names if k in scorecard}
    if "covariates" in scorecard:
        sections["covariates"] = scorecard["covariates"]["models"]
    if "spend_covariates" in scorecard:
        sections["spend_covariates"] = scorecard["spend_covariates"]
    out = {
        mlflow_name(k): float(v)
        for k, v in flatten(sections).items()
        if isinstance(v, (int, float))
    }
    for section in ("purchases", "value"):
        for metric, value in scorecard.get(section, {}).get(chosen, {}).items():
            out[f"{section}.chosen.{metric}"] = float(value)
    return {k: v for k, v in out.items() if np.isfinite(v)}
