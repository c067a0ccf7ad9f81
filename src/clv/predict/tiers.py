"""Value segments at scoring: the bundle's fixed thresholds applied to each customer's value at
the reference horizon, unit and discount rate they were set at."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from clv import units
from clv.bundle import Bundle
from clv.config import DEFAULT_SEGMENTS
from clv.models.groups import spend_per_transaction
from clv.predict.outputs import purchase_outputs
from clv.segments import cumulative_shares, tier_sizes


def define_segments(
    bundle: Bundle,
    rfm: pd.DataFrame,
    tiers: dict[str, float] | None = None,
    rest: str = "rest",
    horizon: float = 52.0,
    time_unit: str | None = None,
    discount_rate: float = 0.0,
) -> dict[str, Any]:
    """Fix a bundle's value tiers at the training population's quantiles.

    Each tier's threshold is the value of the customer at its boundary (e.g. the 10 % of
    customers with the highest CLV are ``top``), for both bases: CLV per unit of margin (the
    margin scales every CLV alike, so it cannot change a tier) and expected purchases (used
    when a list is scored without amounts). Values are computed at a reference horizon, time
    unit and discount rate (the training config's ``score`` settings), stored with the
    thresholds: scoring computes the same reference values for each customer, whatever horizon
    it was asked for, so the segment depends only on the customer and the model.

    Parameters
    ----------
    bundle : Bundle
        The trained models.
    rfm : pandas.DataFrame
        The training population (``frequency, recency, T`` [+ ``monetary_value``]) in the
        bundle's time unit.
    tiers : dict, optional
        Name → share of customers from the top (default top 10 %, high 20 %).
    rest : str
        Name of the customers below the tiers.
    horizon, time_unit, discount_rate
        Reference settings of the values (time unit: the bundle's when None).

    Returns
    -------
    dict
        JSON-ready rule stored in the bundle (``Bundle.segments``).
    """
    tiers = dict(DEFAULT_SEGMENTS if tiers is None else tiers)
    rule: dict[str, Any] = {
        "horizon": float(horizon),
        "time_unit": time_unit or bundle.time_unit,
        "discount_rate": float(discount_rate),
        "rest": rest,
        "customers": len(rfm),
        "tiers": [],
    }
    basis = segment_basis(bundle, rfm, rule)
    ordered = {k: np.sort(v)[::-1] for k, v in basis.items()}
    shares = cumulative_shares(tiers)
    for name, size in tier_sizes(tiers, len(rfm)).items():
        tier: dict[str, Any] = {"name": name, "share": shares[name]}
        for key, values in ordered.items():
            tier[key] = float(values[min(size, len(values)) - 1]) if size > 0 else None
        rule["tiers"].append(tier)
    return rule


def segment_basis(bundle: Bundle, rfm: pd.DataFrame, rule: dict[str, Any]) -> dict[str, np.ndarray]:
    """Reference values of the tiers: expected purchases and (with spend) CLV per unit margin."""
    step = units.conversion(rule["time_unit"], bundle.time_unit)
    horizon = rule["horizon"]
    outputs = purchase_outputs(bundle, rfm, horizon * step, horizon, step, rule["discount_rate"])
    basis = {"expected_purchases": outputs["expected_purchases"]}
    if bundle.spend is not None and "monetary_value" in rfm:
        basis["clv"] = spend_per_transaction(bundle.spend, rfm) * outputs["discounted"]
    return basis


def segment_shares(rule: dict[str, Any]) -> dict[str, float]:
    """Each tier's own share of customers in a segment rule."""
    out, previous = {}, 0.0
    for tier in rule["tiers"]:
        out[tier["name"]] = round(tier["share"] - previous, 12)
        previous = tier["share"]
    return out
