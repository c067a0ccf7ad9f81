"""The MLflow pyfunc model of a clv bundle (logged "from code": nothing is pickled).

It scores what users have, recognised by its columns:

- **customer features** — the frame :func:`clv.predict.customer_features` returns, as is
  (integer or float columns alike);
- **an RFM table** — ``customer_id, frequency, recency, T`` (+ ``monetary_value`` for value
  columns), in the bundle's time unit: without the churn classifier's features,
  ``churn_probability`` is the BTYD P(no purchase) over the churn horizon and ``churn_source``
  says so;
- **raw transactions** — ``customer_id``, ``date`` (+ ``amount``), one row per purchase (the
  log's own column names of the training config work too): cleaned like ``clv score`` cleans a
  log, scored as of the ``as_of`` param (default: the last day in the frame).

A model with covariates (:mod:`clv.models.covariates`) reads its attribute columns from any of
the three (in transactions, a customer's first row gives hers).

Output: the columns of :func:`clv.predict.score_rfm`. Params (defaults from the training
config): ``horizon``, ``time_unit``, ``discount_rate``, ``margin``, ``interval`` (0: no
interval columns); ``as_of`` (YYYY-MM-DD) and
``date_format`` for raw transactions.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd

#: The columns of a raw transaction frame, besides customer_id (and the training log's own names).
TRANSACTION_COLUMNS = ("date", "amount")


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
        from clv.config import DEFAULT_INTERVAL
        from clv.predict import score_rfm

        defaults = self.bundle.config.get("score", {})
        params = params or {}
        frame = pd.DataFrame(model_input)
        if "frequency" not in frame:
            frame = transaction_features(self.bundle, frame, params)
        unit = params.get("time_unit") or defaults.get("time_unit") or None
        return score_rfm(
            self.bundle,
            frame,
            horizon=float(params.get("horizon") or defaults.get("horizon", 52.0)),
            time_unit=unit,
            discount_rate=float(params.get("discount_rate", defaults.get("discount_rate", 0.0))),
            margin=float(params.get("margin", defaults.get("margin", 1.0))),
            segments=defaults.get("segments"),
            segment_rest=defaults.get("segment_rest", "rest"),
            interval=float(params.get("interval", defaults.get("interval", DEFAULT_INTERVAL))),
        )


def transaction_features(bundle: Any, frame: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """The customer features of a raw transaction frame, cleaned with the training config's
    rules (its column names, or ``customer_id, date, amount``), as of ``params["as_of"]``.

    Raises
    ------
    DataValidationError
        When the frame is neither customer features nor transactions, naming what it has.
    """
    from clv.config import DataConfig
    from clv.data.clean import clean_transactions
    from clv.errors import DataValidationError
    from clv.models.groups import attribute_names
    from clv.predict import customer_features

    trained = DataConfig.model_validate(bundle.config.get("data", {}))

    def present(*names: str | None) -> str | None:
        return next((c for c in names if c and c in frame), None)

    columns = {
        "customer_col": present(trained.customer_col, "customer_id"),
        "date_col": present(trained.date_col, "date"),
        "amount_col": present(trained.amount_col, "amount"),
    }
    if columns["customer_col"] is None or columns["date_col"] is None:
        raise DataValidationError(
            f"The model input has columns {list(frame.columns)}: give customer features "
            "(customer_id, frequency, recency, T[, monetary_value, …]) or transactions "
            f"(customer_id, date[, amount]; or the log's own {trained.customer_col!r}, "
            f"{trained.date_col!r}, {trained.amount_col!r})."
        )
    config = trained.model_copy(
        update={**columns, "date_format": params.get("date_format") or trained.date_format}
    )
    as_of = pd.Timestamp(params["as_of"]) if params.get("as_of") else None
    log = clean_transactions(frame, config, as_of=as_of)
    covariates = [c for c in attribute_names(bundle) if c in frame]
    attributes = None
    if covariates:  # a model with covariates: each customer's attributes from her rows
        attributes = (
            frame[[columns["customer_col"], *covariates]]
            .groupby(columns["customer_col"], sort=False)
            .first()
            .reset_index()
            .rename(columns={columns["customer_col"]: "customer_id"})
            .astype({"customer_id": "str"})
        )
    return customer_features(bundle, log, as_of=as_of, attributes=attributes)


def input_schema(bundle: Any) -> Any:
    """The model's input schema: ``customer_id`` required; every column the model can read —
    RFM, the churn features and attributes, a transaction frame's columns — optional and of any
    type (the model checks them itself, with messages naming the column)."""
    from mlflow.types.schema import AnyType, ColSpec, Schema

    from clv.models.groups import attribute_names

    names = ["has_history", "frequency", "recency", "T", "monetary_value"]
    if bundle.churn is not None:
        names += [*bundle.churn.features, *bundle.churn.attributes]
    names += attribute_names(bundle)
    data = bundle.config.get("data", {})
    names += [data.get("customer_col"), data.get("date_col"), data.get("amount_col")]
    names += list(TRANSACTION_COLUMNS)
    optional = [n for n in dict.fromkeys(names) if n and n != "customer_id"]
    return Schema(
        [ColSpec(AnyType(), "customer_id")]
        + [ColSpec(AnyType(), n, required=False) for n in optional]
    )


def signature(bundle: Any, scores: pd.DataFrame, params: dict[str, Any]) -> Any:
    """The logged model's signature: :func:`input_schema`, the scores' columns, and the params
    (scoring settings, plus ``as_of`` and ``date_format`` for transactions)."""
    from mlflow.models import ModelSignature, infer_signature

    inferred = infer_signature(
        scores.head(1), scores, params={**params, "as_of": "", "date_format": ""}
    )
    return ModelSignature(input_schema(bundle), inferred.outputs, inferred.params)
