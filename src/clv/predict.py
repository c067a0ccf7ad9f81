"""Batch scoring: forward-looking value per customer from a model bundle.

One code path for the CLI, notebooks and the MLflow model::

    from clv.predict import customer_features, load_model, score_rfm, score_transactions
    bundle = load_model("models/cdnow")
    scores = score_transactions(bundle, log, horizon=52, discount_rate=0.0019)

Output columns (value columns only when the bundle has a spend model and the input has
amounts; churn columns when the bundle has a churn model):

``customer_id, has_history, frequency, recency, T, monetary_value, p_alive,
expected_purchases, expected_purchases_low, expected_purchases_high, p_no_purchase,
expected_avg_value, clv, clv_low, clv_high, churn_probability, churn_source, value_segment``

- ``expected_purchases`` / ``p_no_purchase``: expected transactions / probability of none within
  the horizon;
- ``expected_purchases_low/high``, ``clv_low/high``: the equal-tailed predictive interval at
  the ``interval`` level (0.8 by default; 0 leaves the four columns out), from each model's exact
  predictive distribution of purchases and the Gamma-Gamma posterior of spend
  (:mod:`clv.intervals`); purchase bounds are whole counts;
- ``expected_avg_value``: Gamma-Gamma expected spend per transaction;
- ``clv``: margin × discounted expected spend over the horizon (:mod:`clv.value`);
- ``churn_probability``: calibrated probability of no purchase within the churn model's own
  horizon H (``bundle.churn.horizon``), whatever the scoring horizon;
- ``churn_source``: ``churn_model`` when it comes from the shipped churn classifier;
  ``btyd_p_no_purchase`` when the input lacks the classifier's features (an RFM table alone):
  then it is the churn model's BTYD P(no purchase) over H, uncalibrated, and a notice says so;
- ``value_segment``: the value tier, by thresholds fixed at training (:func:`define_segments`):
  a customer's segment depends on the customer and the model, never on who else is scored.

The horizon and the discount rate are in the scoring time unit (the bundle's by default), and so
are the ``recency`` and ``T`` columns of the output.
Customers listed without any transaction get the population-level prediction of a customer who
has just made a first purchase (``frequency = recency = T = 0``) and ``has_history = False``.
Work is vectorized over customers and done in chunks, reporting progress after each.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clv import units
from clv.bundle import Bundle, load_bundle
from clv.config import DEFAULT_INTERVAL, DEFAULT_SEGMENTS
from clv.data.compact import CUSTOMER
from clv.data.log import TransactionLog
from clv.errors import ClvWarning, DataValidationError, ScoreError
from clv.features import build_rfm
from clv.intervals import Forecast, Range, add_ranges, forecast
from clv.models.covariates import CovariateModel
from clv.models.groups import (
    attribute_names,
    bundle_groups,
    has_covariates,
    plain_models,
    spend_per_transaction,
)
from clv.models.patterns import rfm_patterns_index
from clv.segments import (
    apply_segments,
    cumulative_shares,
    tier_sizes,
    value_segments,
)
from clv.value import discounted_purchases

#: Score columns that always hold a finite number when present (checked before every write).
NUMERIC_SCORE_COLUMNS = (
    "frequency",
    "recency",
    "T",
    "monetary_value",
    "p_alive",
    "expected_purchases",
    "expected_purchases_low",
    "expected_purchases_high",
    "p_no_purchase",
    "expected_avg_value",
    "clv",
    "clv_low",
    "clv_high",
    "churn_probability",
)


def check_finite(scores: pd.DataFrame, what: str = "The scores") -> None:
    """Refuse scores with a missing, NaN or infinite value where a number is promised.

    Raises
    ------
    ScoreError
        Naming each such column, how many customers, and the first one.
    """
    problems = []
    for col in NUMERIC_SCORE_COLUMNS:
        if col not in scores:
            continue
        values = pd.to_numeric(scores[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            who = scores[CUSTOMER].iloc[first] if CUSTOMER in scores else f"row {first + 1}"
            problems.append(
                f"{col!r}: {int(bad.sum()):,} customer(s), e.g. {who!r} ({values[first]})"
            )
    if problems:
        raise ScoreError(
            f"{what} hold values that are not finite numbers — {'; '.join(problems)}. Nothing "
            "was written. This points to implausible inputs (amounts or dates far outside the "
            "rest of the log) or a damaged model: check the cleaning report, or retrain."
        )


def write_scores(scores: pd.DataFrame, path: str | Path) -> Path:
    """Write a score table atomically (:func:`clv.tables.write_table`) after
    :func:`check_finite`: no score file ever holds NaN or inf where a number is promised."""
    from clv.tables import write_table

    check_finite(scores, f"The scores for {path}")
    return write_table(scores, path)


#: Unique (frequency, recency, T) patterns scored per chunk (one progress step each).
CHUNK_SIZE = 100_000

Progress = Callable[[int, int], None]


def load_model(uri: str | Path, tracking_uri: str | None = None) -> Bundle:
    """Load a bundle from a folder, or from MLflow (``models:/NAME@alias``, ``runs:/ID/model``).

    ``tracking_uri`` is where MLflow URIs are looked up (default: ``$MLFLOW_TRACKING_URI``, else
    ``sqlite:///mlflow.db`` in the working directory).
    """
    text = str(uri)
    if text.startswith(("models:/", "runs:/", "mlflow-artifacts:/")):
        from clv.mlflow_store import download_bundle

        return load_bundle(download_bundle(text, tracking_uri))
    return load_bundle(uri)


def _check_rfm(rfm: pd.DataFrame, needs_value: bool) -> None:
    needed = [CUSTOMER, "frequency", "recency", "T"] + (["monetary_value"] if needs_value else [])
    missing = [c for c in needed if c not in rfm.columns]
    if missing:
        raise DataValidationError(
            f"The RFM table lacks column(s) {missing}; it has {list(rfm.columns)}. "
            "Build it with clv.predict.customer_features or score a transaction log instead."
        )
    checks = {
        "frequency is negative or not whole": (rfm["frequency"] < 0)
        | (rfm["frequency"] != np.round(rfm["frequency"])),
        "recency is negative or above T": (rfm["recency"] < 0) | (rfm["recency"] > rfm["T"]),
        "recency is not 0 while frequency is 0": (rfm["frequency"] == 0) & (rfm["recency"] != 0),
        "a value is missing": rfm[needed[1:]].isna().any(axis=1),
    }
    for rule, mask in checks.items():
        bad = mask.to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataValidationError(
                f"RFM table: {int(bad.sum()):,} row(s) where {rule}, e.g. customer "
                f"{rfm[CUSTOMER].iloc[row]!r}. Rebuild it with clv.features.build_rfm."
            )


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
    basis = _segment_basis(bundle, rfm, rule)
    ordered = {k: np.sort(v)[::-1] for k, v in basis.items()}
    shares = cumulative_shares(tiers)
    for name, size in tier_sizes(tiers, len(rfm)).items():
        tier: dict[str, Any] = {"name": name, "share": shares[name]}
        for key, values in ordered.items():
            tier[key] = float(values[min(size, len(values)) - 1]) if size > 0 else None
        rule["tiers"].append(tier)
    return rule


def _segment_basis(
    bundle: Bundle, rfm: pd.DataFrame, rule: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Reference values of the tiers: expected purchases and (with spend) CLV per unit margin."""
    step = units.conversion(rule["time_unit"], bundle.time_unit)
    horizon = rule["horizon"]
    outputs = _purchase_outputs(bundle, rfm, horizon * step, horizon, step, rule["discount_rate"])
    basis = {"expected_purchases": outputs["expected_purchases"]}
    if bundle.spend is not None and "monetary_value" in rfm:
        basis["clv"] = spend_per_transaction(bundle.spend, rfm) * outputs["discounted"]
    return basis


#: ``churn_source`` values: the shipped classifier; its BTYD stand-in for an RFM-only input; the
#: shipped purchase model's P(no purchase) when the bundle has no classifier (the training run
#: skipped it, :func:`clv.churn.without_classifier`).
CHURN_FROM_MODEL, CHURN_FROM_BTYD = "churn_model", "btyd_p_no_purchase"
CHURN_FROM_PURCHASE = "purchase_model_p_no_purchase"


def _churn_probability(bundle: Bundle, frame: pd.DataFrame) -> tuple[np.ndarray, str] | None:
    """The churn probability of each customer and where it comes from (``churn_source``)."""
    churn = bundle.churn
    if churn is None:
        return None
    if not churn.has_classifier:
        h = churn.horizon * units.conversion(churn.time_unit, bundle.time_unit)
        p = _purchase_outputs(bundle, frame, h, h, 1.0, 0.0)["p_no_purchase"]
        return p, CHURN_FROM_PURCHASE
    x, t_x, T = (frame[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    h = churn.horizon
    attributes = set(churn.attributes)
    btyd_outputs = {"p_alive", "expected_purchases", "p_no_purchase"}
    missing = [c for c in churn.features if c not in frame and c not in attributes | btyd_outputs]
    if missing:
        warnings.warn(
            f"churn_probability is the BTYD P(no purchase) over the churn horizon, not the churn "
            f"classifier's (churn_source = {CHURN_FROM_BTYD!r}): the input lacks its features "
            f"{missing[:5]}{'…' if len(missing) > 5 else ''}. Score a transaction log, or build "
            "the frame with clv.predict.customer_features, for the classifier's probability.",
            ClvWarning,
            stacklevel=3,
        )
        return churn.btyd.p_no_purchase(h, x, t_x, T), CHURN_FROM_BTYD
    absent = [c for c in churn.attributes if c not in frame]
    if absent:
        warnings.warn(
            f"Customer attributes {absent} are missing; the churn model treats them as unknown.",
            ClvWarning,
            stacklevel=3,
        )
    features = frame.assign(
        p_alive=churn.btyd.p_alive(x, t_x, T),
        expected_purchases=churn.btyd.expected_purchases(h, x, t_x, T),
        p_no_purchase=churn.btyd.p_no_purchase(h, x, t_x, T),
    )
    return churn.predict_proba(features), CHURN_FROM_MODEL


def score_rfm(
    bundle: Bundle,
    rfm: pd.DataFrame,
    horizon: float,
    time_unit: str | None = None,
    discount_rate: float = 0.0,
    margin: float = 1.0,
    progress: Progress | None = None,
    segments: dict[str, float] | None = None,
    segment_rest: str = "rest",
    interval: float = DEFAULT_INTERVAL,
) -> pd.DataFrame:
    """Score customers given their RFM (and churn features) in the bundle's time unit.

    Parameters
    ----------
    bundle : Bundle
        A trained model.
    rfm : pandas.DataFrame
        ``customer_id, frequency, recency, T`` (+ ``monetary_value`` for value columns; +
        the churn features of :func:`customer_features` for ``churn_probability``), optionally
        ``has_history``; recency and T in ``bundle.time_unit``.
    horizon : float
        Forecast horizon in ``time_unit``; may be fractional.
    time_unit : {"day", "week", "month"}, optional
        Unit of ``horizon`` and ``discount_rate``; the bundle's when omitted.
    discount_rate : float
        Discount rate per ``time_unit``.
    margin : float
        Share of spend that is profit.
    progress : callable, optional
        Called as ``progress(done, total)`` after each chunk of customers.
    segments : dict, optional
        The value tiers the caller expects (name → share from the top). Tiers are fixed at
        training (``bundle.segments``); when these differ, a warning says so. Only a bundle
        without stored thresholds (an older clv) ranks the list itself by them.
    segment_rest : str
        Name of the customers below the tiers, for such an older bundle.
    interval : float
        Level of the predictive intervals (``0 < interval < 1``); 0 leaves them out.

    Returns
    -------
    pandas.DataFrame
        One row per input row, in input order, with the columns of the module docstring. With
        intervals, ``attrs["ranges"]`` holds the totals of expected purchases (and CLV) over
        the horizon with their ranges (:class:`clv.intervals.Range` as dicts).
    """
    if horizon <= 0:
        raise DataValidationError(f"horizon must be positive, got {horizon}.")
    if discount_rate < 0 or margin <= 0:
        raise DataValidationError("discount_rate must be ≥ 0 and margin > 0.")
    if not (interval == 0 or 0 < interval < 1):
        raise DataValidationError(
            f"interval must be a level between 0 and 1 (e.g. 0.8), or 0 for none; got {interval}."
        )
    unit = time_unit or bundle.time_unit
    try:
        units.check_unit(unit)
    except ValueError as exc:
        raise DataValidationError(str(exc)) from None
    has_value = bundle.spend is not None and "monetary_value" in rfm
    _check_rfm(rfm, has_value)
    if has_covariates(bundle):
        return _score_by_group(
            bundle,
            rfm,
            progress,
            horizon=horizon,
            time_unit=time_unit,
            discount_rate=discount_rate,
            margin=margin,
            segments=segments,
            segment_rest=segment_rest,
            interval=interval,
        )
    step = units.conversion(unit, bundle.time_unit)
    t = horizon * step
    out = pd.DataFrame({CUSTOMER: rfm[CUSTOMER].astype("str").reset_index(drop=True)})
    out["has_history"] = (
        rfm["has_history"].to_numpy(dtype=bool) if "has_history" in rfm else np.ones(len(rfm), bool)
    )
    cols = ["frequency", "recency", "T"] + (["monetary_value"] if has_value else [])
    for col in cols:
        out[col] = rfm[col].to_numpy(dtype=float)
    out["frequency"] = out["frequency"].astype("int64")
    index = rfm_patterns_index(out)
    purchases = _purchase_outputs(bundle, out, t, horizon, step, discount_rate, progress, index)
    for name in ("p_alive", "expected_purchases", "p_no_purchase"):
        out[name] = purchases[name]
    basis = "clv" if has_value else "expected_purchases"
    reference = {"expected_purchases": purchases["expected_purchases"]}
    if has_value:
        x, m = out["frequency"].to_numpy(dtype=float), out["monetary_value"].to_numpy()
        out["expected_avg_value"] = bundle.spend.expected_average_value(x, m)
        reference["clv"] = out["expected_avg_value"].to_numpy() * purchases["discounted"]
        out["clv"] = margin * reference["clv"]
    if interval:
        _add_intervals(bundle, out, purchases, index, t, margin, interval, has_value)
    churn = _churn_probability(bundle, rfm.reset_index(drop=True))
    if churn is not None:
        out["churn_probability"], out["churn_source"] = churn
    rule = bundle.segments
    if not rule:
        warnings.warn(
            "This bundle has no stored segment thresholds (made by an older clv): value "
            "segments are ranked within this list. Retrain to fix them at training.",
            ClvWarning,
            stacklevel=2,
        )
        out["value_segment"] = value_segments(reference[basis], segments, segment_rest)
    else:
        if segments is not None and dict(segments) != _shares(rule):
            warnings.warn(
                f"Value segments are defined at training ({_shares(rule)}); the tiers asked for "
                f"here ({dict(segments)}) take effect when the model is retrained.",
                ClvWarning,
                stacklevel=2,
            )
        if (rule["horizon"], rule["time_unit"], rule["discount_rate"]) != (
            horizon,
            unit,
            discount_rate,
        ):
            reference = _segment_basis(bundle, out, rule)
        out["value_segment"] = apply_segments(reference[basis], rule, basis)
    out["recency"] = out["recency"].to_numpy() / step  # the model's unit → the scoring unit
    out["T"] = out["T"].to_numpy() / step
    return out


def _score_by_group(
    bundle: Bundle, rfm: pd.DataFrame, progress: Progress | None, **options: Any
) -> pd.DataFrame:
    """:func:`score_rfm` of a bundle with covariates: each group of customers with the same
    covariate vector by its plain models (:func:`clv.models.groups.bundle_groups`), rows back
    in input order, the totals' ranges added over the groups (:func:`clv.intervals.add_ranges`)."""
    rfm = rfm.reset_index(drop=True)
    parts, done = [], 0
    for rows, group in bundle_groups(bundle, rfm):
        part = score_rfm(group, rfm.iloc[rows], **options)
        parts.append(part.set_axis(rows))
        done += len(rows)
        if progress is not None:
            progress(done, len(rfm))
    out = pd.concat(parts).sort_index()
    ranges = [p.attrs.get("ranges", {}) for p in parts]
    if ranges and ranges[0]:
        out.attrs["ranges"] = {
            name: add_ranges([Range(**r[name]) for r in ranges]).to_dict() for name in ranges[0]
        }
    return out.reset_index(drop=True)


def _add_intervals(
    bundle: Bundle,
    out: pd.DataFrame,
    purchases: dict[str, np.ndarray],
    index: tuple[np.ndarray, np.ndarray],
    t: float,
    margin: float,
    level: float,
    has_value: bool,
) -> None:
    """Insert the interval columns beside their point forecasts, and the totals' ranges into
    ``out.attrs["ranges"]`` (:func:`clv.intervals.forecast`)."""
    result = _forecast(bundle, out, purchases, index, t, margin, level, has_value, customers=True)
    for anchor, names in (
        ("expected_purchases", ("expected_purchases_low", "expected_purchases_high")),
        ("clv", ("clv_low", "clv_high")),
    ):
        if anchor in out:
            at = out.columns.get_loc(anchor) + 1
            for offset, name in enumerate(names):
                out.insert(at + offset, name, result.columns[name])
    out.attrs["ranges"] = {k: r.to_dict() for k, r in result.ranges.items()}


def _forecast(
    bundle: Bundle,
    frame: pd.DataFrame,
    purchases: dict[str, np.ndarray],
    index: tuple[np.ndarray, np.ndarray],
    t: float,
    margin: float,
    level: float,
    has_value: bool,
    customers: bool,
) -> Forecast:
    """:func:`clv.intervals.forecast` of the customers in ``frame`` (model time unit)."""
    return forecast(
        bundle.purchase,
        bundle.spend if has_value else None,
        t,
        *(frame[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T")),
        monetary_value=frame["monetary_value"].to_numpy(dtype=float) if has_value else None,
        discounted=purchases["discounted"],
        margin=margin,
        level=level,
        customers=customers,
        expected=purchases["expected_purchases"],
        index=index,
    )


def total_ranges(
    bundle: Bundle,
    rfm: pd.DataFrame,
    horizon: float,
    time_unit: str | None = None,
    discount_rate: float = 0.0,
    margin: float = 1.0,
    interval: float = DEFAULT_INTERVAL,
) -> dict[str, dict[str, float]]:
    """The totals' ranges of :func:`score_rfm` (its ``attrs["ranges"]``) without scoring each
    customer: for an engine that scores the customers elsewhere (Spark), from the same inputs.

    Parameters are those of :func:`score_rfm`; ``rfm`` is validated the same way. Returns
    ``{}`` when ``interval`` is 0.
    """
    if not interval:
        return {}
    unit = time_unit or bundle.time_unit
    has_value = bundle.spend is not None and "monetary_value" in rfm
    _check_rfm(rfm, has_value)
    step = units.conversion(unit, bundle.time_unit)
    cols = ["frequency", "recency", "T"] + (["monetary_value"] if has_value else [])
    frame = rfm.reset_index(drop=True)
    t = horizon * step
    parts: list[dict[str, Range]] = []
    for rows, group in bundle_groups(bundle, frame):  # by covariate group, if any
        values = frame[cols].iloc[rows].astype(float).reset_index(drop=True)
        index = rfm_patterns_index(values)
        purchases = _purchase_outputs(group, values, t, horizon, step, discount_rate, index=index)
        parts.append(
            _forecast(
                group, values, purchases, index, t, margin, interval, has_value, customers=False
            ).ranges
        )
    return {name: add_ranges([p[name] for p in parts]).to_dict() for name in parts[0]}


def _shares(rule: dict[str, Any]) -> dict[str, float]:
    """Each tier's own share of customers in a segment rule."""
    out, previous = {}, 0.0
    for tier in rule["tiers"]:
        out[tier["name"]] = round(tier["share"] - previous, 12)
        previous = tier["share"]
    return out


#: What :func:`_purchase_outputs` gives per customer.
PURCHASE_OUTPUTS = ("p_alive", "expected_purchases", "p_no_purchase", "discounted")


def _purchase_outputs(
    bundle: Bundle,
    rfm: pd.DataFrame,
    t: float,
    horizon: float,
    step: float,
    discount_rate: float,
    progress: Progress | None = None,
    index: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Purchase-model outputs per customer, computed once per unique (x, t_x, T) pattern.

    They depend on nothing else, and logs have far fewer patterns than customers (recency and T
    are whole days), so this is where most of scoring's time is saved. ``discounted`` is the
    discounted expected number of purchases over the horizon (CLV = margin × spend × it).
    ``index`` is :func:`~clv.models.patterns.rfm_patterns_index` of ``rfm`` when the caller
    has it already.
    """
    if isinstance(bundle.purchase, CovariateModel):  # each covariate group by its own model
        frame = rfm.reset_index(drop=True)
        out = {k: np.empty(len(frame)) for k in PURCHASE_OUTPUTS}
        for rows, plain, _ in plain_models(bundle.purchase, None, frame):
            part = _purchase_outputs(
                replace(bundle, purchase=plain), frame.iloc[rows], t, horizon, step, discount_rate
            )
            for k in PURCHASE_OUTPUTS:
                out[k][rows] = part[k]
        if progress is not None:
            progress(len(frame), len(frame))
        return out
    patterns, inverse = rfm_patterns_index(rfm) if index is None else index
    model, total = bundle.purchase, len(patterns)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in PURCHASE_OUTPUTS}
    for start in range(0, max(total, 1), CHUNK_SIZE):
        x, t_x, T = patterns[start : start + CHUNK_SIZE].T
        expected = model.expected_purchases(t, x, t_x, T)
        parts["p_alive"].append(model.p_alive(x, t_x, T))
        parts["expected_purchases"].append(expected)
        parts["p_no_purchase"].append(model.p_no_purchase(t, x, t_x, T))
        parts["discounted"].append(
            expected  # undiscounted, the steps' sum telescopes to the horizon's expectation
            if discount_rate == 0
            else discounted_purchases(
                lambda s, x=x, t_x=t_x, T=T: model.expected_purchases(s, x, t_x, T),
                horizon,
                step_length=step,
                discount_rate=discount_rate,
            )
        )
        if progress is not None:
            progress(min(start + CHUNK_SIZE, total), total)
    return {k: np.concatenate(v)[inverse] if total else np.array([]) for k, v in parts.items()}


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


def score_transactions(
    bundle: Bundle,
    log: TransactionLog,
    horizon: float,
    as_of: pd.Timestamp | None = None,
    customers: pd.DataFrame | None = None,
    time_unit: str | None = None,
    discount_rate: float = 0.0,
    margin: float = 1.0,
    progress: Progress | None = None,
    segments: dict[str, float] | None = None,
    segment_rest: str = "rest",
    surveys: pd.DataFrame | None = None,
    interval: float = DEFAULT_INTERVAL,
    attributes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Score a cleaned transaction log (see :func:`customer_features` and :func:`score_rfm`)."""
    bundle = value_model(bundle, log.has_amounts)
    frame = customer_features(
        bundle, log, as_of=as_of, customers=customers, surveys=surveys, attributes=attributes
    )
    return score_rfm(
        bundle,
        frame,
        horizon,
        time_unit=time_unit,
        discount_rate=discount_rate,
        margin=margin,
        progress=progress,
        segments=segments,
        segment_rest=segment_rest,
        interval=interval,
    )
