"""Scoring: every score column of a customer table (RFM and features) by one code path,
per history pattern, with intervals, churn probability and value segments."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from clv import units
from clv.bundle import Bundle
from clv.config import DEFAULT_INTERVAL
from clv.data.compact import CUSTOMER
from clv.data.log import TransactionLog
from clv.errors import ClvWarning, DataValidationError
from clv.intervals import Forecast, Range, add_ranges, forecast
from clv.models.groups import bundle_groups, has_covariates
from clv.models.patterns import rfm_patterns_index
from clv.predict.features import customer_features, value_model
from clv.predict.outputs import Progress, purchase_outputs
from clv.predict.tiers import segment_basis, segment_shares
from clv.segments import apply_segments, value_segments


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
        p = purchase_outputs(bundle, frame, h, h, 1.0, 0.0)["p_no_purchase"]
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
    unit = time_unit or bundle.time_unit
    _check_options(horizon, unit, discount_rate, margin, interval)
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
    purchases = purchase_outputs(bundle, out, t, horizon, step, discount_rate, progress, index)
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
    settings = (horizon, unit, discount_rate)
    out["value_segment"] = _value_segments(
        bundle, out, reference, basis, settings, segments, segment_rest
    )
    out["recency"] = out["recency"].to_numpy() / step  # the model's unit → the scoring unit
    out["T"] = out["T"].to_numpy() / step
    return out


def _check_options(
    horizon: float, unit: str, discount_rate: float, margin: float, interval: float
) -> None:
    """Refuse scoring options no forecast can have."""
    if horizon <= 0:
        raise DataValidationError(f"horizon must be positive, got {horizon}.")
    if discount_rate < 0 or margin <= 0:
        raise DataValidationError("discount_rate must be ≥ 0 and margin > 0.")
    if not (interval == 0 or 0 < interval < 1):
        raise DataValidationError(
            f"interval must be a level between 0 and 1 (e.g. 0.8), or 0 for none; got {interval}."
        )
    try:
        units.check_unit(unit)
    except ValueError as exc:
        raise DataValidationError(str(exc)) from None


def _value_segments(
    bundle: Bundle,
    out: pd.DataFrame,
    reference: dict[str, np.ndarray],
    basis: str,
    settings: tuple[float, str, float],
    segments: dict[str, float] | None,
    segment_rest: str,
) -> np.ndarray:
    """Each customer's value segment: by the thresholds fixed at training, on each customer's
    value at the reference ``(horizon, unit, discount_rate)`` they were set at (``settings`` are
    this scoring's); a bundle without thresholds ranks the list itself."""
    rule = bundle.segments
    if not rule:
        warnings.warn(
            "This bundle has no stored segment thresholds (made by an older clv): value "
            "segments are ranked within this list. Retrain to fix them at training.",
            ClvWarning,
            stacklevel=3,
        )
        return value_segments(reference[basis], segments, segment_rest)
    if segments is not None and dict(segments) != segment_shares(rule):
        warnings.warn(
            f"Value segments are defined at training ({segment_shares(rule)}); the tiers asked "
            f"for here ({dict(segments)}) take effect when the model is retrained.",
            ClvWarning,
            stacklevel=3,
        )
    if (rule["horizon"], rule["time_unit"], rule["discount_rate"]) != settings:
        reference = segment_basis(bundle, out, rule)
    return apply_segments(reference[basis], rule, basis)


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
        purchases = purchase_outputs(group, values, t, horizon, step, discount_rate, index=index)
        parts.append(
            _forecast(
                group, values, purchases, index, t, margin, interval, has_value, customers=False
            ).ranges
        )
    return {name: add_ranges([p[name] for p in parts]).to_dict() for name in parts[0]}


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
