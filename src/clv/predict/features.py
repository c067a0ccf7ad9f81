"""The model's input from a log: each customer's RFM, the churn classifier's features and the
attributes a model with covariates reads, as of a day."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pandas as pd

from clv.bundle import Bundle
from clv.data.compact import CUSTOMER
from clv.data.log import TransactionLog
from clv.errors import DataValidationError
from clv.features import build_rfm
from clv.models.groups import attribute_names


def model_attributes(
    bundle: Bundle, config: Any, listed: pd.DataFrame | None = None
) -> pd.DataFrame | None:
    """The customer attributes a model with covariates reads, from ``train.customers`` of
    ``config`` or else of the bundle's own training config; ``None`` for any other model, or
    when the customer list to score (``listed``) has them all.

    Raises
    ------
    DataValidationError
        When the model has covariates and neither config names a customer list.
    """
    names = attribute_names(bundle)
    if not names:
        return None
    if listed is not None and all(n in listed for n in names):
        return None
    path = config.train.customers or bundle.config.get("train", {}).get("customers")
    if not path:
        raise DataValidationError(
            f"The model reads customer attributes {names}: give the customer list with "
            "--customers (train.customers)."
        )
    from clv.data.customers import read_customer_list

    return read_customer_list(path, config.data.customer_col)


def customer_features(
    bundle: Bundle,
    log: TransactionLog,
    as_of: pd.Timestamp | None = None,
    customers: pd.DataFrame | None = None,
    surveys: pd.DataFrame | None = None,
    attributes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """RFM (+ churn features and attributes, when the bundle has a churn model) as of a day.

    ``as_of`` defaults to the log's last day (rows after it should already be excluded when the
    log was cleaned). With ``customers``, the output follows the list's order: listed ids without
    transactions get ``frequency = recency = T = 0`` and ``has_history = False``; ids in the log
    but not in the list are left out. Extra columns of ``customers`` are attributes, and so are
    the columns of ``attributes`` (``customer_id`` + columns, e.g. :func:`model_attributes`)
    that ``customers`` does not have.
    """
    frame = _features(bundle, log, as_of, customers, surveys)
    if attributes is None:
        return frame
    extra = attributes[[CUSTOMER, *(c for c in attributes if c != CUSTOMER and c not in frame)]]
    return frame.merge(extra, on=CUSTOMER, how="left", validate="many_to_one")


def _features(
    bundle: Bundle,
    log: TransactionLog,
    as_of: pd.Timestamp | None,
    customers: pd.DataFrame | None,
    surveys: pd.DataFrame | None,
) -> pd.DataFrame:
    end = pd.Timestamp(as_of or log.report.last_date).normalize()
    unit = bundle.time_unit
    if bundle.churn is not None and bundle.churn.has_classifier:
        from clv.churn import behaviour_features, with_customer_features

        # the churn features without the BG/NBD outputs: scoring adds them per pattern
        attributes = customers if customers is not None and customers.shape[1] > 1 else None
        rfm = behaviour_features(log.compact, end, unit)
        rfm = with_customer_features(rfm, end, attributes, surveys)
    else:
        rfm = build_rfm(log.compact, end, unit)
    rfm.insert(1, "has_history", True)
    if customers is None:
        return rfm
    listed = customers[[CUSTOMER]].merge(
        rfm.drop(columns=[c for c in customers.columns if c != CUSTOMER and c in rfm]),
        on=CUSTOMER,
        how="left",
    )
    listed = listed.merge(customers, on=CUSTOMER, how="left") if customers.shape[1] > 1 else listed
    new = listed["frequency"].isna()
    listed["has_history"] = ~new
    fill = {"frequency": 0, "recency": 0.0, "T": 0.0}
    if "monetary_value" in listed:
        fill["monetary_value"] = 0.0
    listed = listed.fillna(fill)
    listed["frequency"] = listed["frequency"].astype("int64")
    listed["has_history"] = listed["has_history"].astype(bool)
    return listed


def value_model(bundle: Bundle, has_amounts: bool) -> Bundle:
    """The bundle to score a log with: without its spend model when the log has no amounts
    (value columns need them)."""
    return replace(bundle, spend=None) if bundle.spend is not None and not has_amounts else bundle
