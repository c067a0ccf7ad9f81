"""BTYD purchase models — BG/NBD, MBG/NBD, Pareto/NBD — with ``lifetimes``' likelihoods.

Fitting maximizes lifetimes' likelihoods (same time rescaling, log parameters and penalizer)
with :mod:`clv.likelihood`, on the unique ``(frequency, recency, T)`` patterns with their counts
as weights: the likelihood is a sum over customers, so this gives the parameters of lifetimes'
unweighted fit (tested to 1e-6) in a small fraction of the time. A fit that does not converge, or
ends with non-finite parameters, is retried once with a small L2 penalizer, then fails with a
:class:`~clv.errors.ModelFitError` that describes the data.

A fitted model is a :class:`PurchaseModel`: plain parameters (saved as JSON, never pickled) and
vectorized predictions for arrays of customers, computed by lifetimes' formulas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from clv._lifetimes import fit_with_retry, fitters, guarded
from clv.errors import ModelFitError
from clv.likelihood import PARAMS, Fit, Patterns, fit_btyd

#: Model kind → (lifetimes fitter class name, parameter names, display name).
KINDS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "bgnbd": ("BetaGeoFitter", PARAMS["bgnbd"], "BG/NBD"),
    "mbgnbd": ("ModifiedBetaGeoFitter", PARAMS["mbgnbd"], "MBG/NBD"),
    "pareto": ("ParetoNBDFitter", PARAMS["pareto"], "Pareto/NBD"),
}


def display_name(kind: str) -> str:
    """Return the usual name of a model kind (``"bgnbd"`` → ``"BG/NBD"``)."""
    return KINDS[kind][2]


def rfm_patterns_index(rfm: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Unique ``(frequency, recency, T)`` rows (floats, in order of first appearance) and, per
    customer, the index of its row.

    A hash group-by (20x faster than ``np.unique(axis=0)`` at 1M customers). Fitting and scoring
    both work on these patterns: outputs depend on nothing else, and logs have far fewer
    patterns than customers.
    """
    keys = rfm[["frequency", "recency", "T"]].astype(float).reset_index(drop=True)
    codes = keys.groupby(["frequency", "recency", "T"], sort=False).ngroup().to_numpy()
    first = ~pd.Series(codes).duplicated().to_numpy()  # codes follow first appearance
    return keys.to_numpy()[first], codes


def rfm_patterns(rfm: pd.DataFrame) -> pd.DataFrame:
    """Collapse customers into unique ``(frequency, recency, T)`` rows with a ``weight`` count."""
    patterns, index = rfm_patterns_index(rfm)
    table = pd.DataFrame(patterns, columns=["frequency", "recency", "T"])
    return table.assign(weight=np.bincount(index, minlength=len(table)))


def describe_pattern(rfm: pd.DataFrame) -> str:
    """One sentence about the data a purchase model sees, for error messages."""
    n = len(rfm)
    if n == 0:
        return "no customers"
    zero = float((rfm["frequency"] == 0).mean())
    return (
        f"{n:,} customers, {zero:.1%} with no repeat purchase, frequency up to "
        f"{int(rfm['frequency'].max())}, T from {rfm['T'].min():.2f} to {rfm['T'].max():.2f}"
    )


@dataclass(frozen=True)
class PurchaseModel:
    """A fitted BTYD purchase model.

    Parameters
    ----------
    kind : {"bgnbd", "mbgnbd", "pareto"}
    params : dict
        ``r, alpha, a, b`` (BG/NBD, MBG/NBD) or ``r, alpha, s, beta`` (Pareto/NBD), with time
        in ``time_unit``.
    time_unit : str
        Unit of ``recency``, ``T`` and ``t`` in every method.
    log_likelihood : float
        Log-likelihood of the fitting data at ``params`` (without the penalty).
    penalizer : float
        L2 penalizer of the fit that was kept.
    standard_errors : dict
        Standard errors of the parameters (inverse Hessian of the log-likelihood; empty when
        it is not positive definite).
    """

    kind: str
    params: dict[str, float]
    time_unit: str
    log_likelihood: float = float("nan")
    penalizer: float = 0.0
    standard_errors: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Display name, e.g. ``BG/NBD``."""
        return display_name(self.kind)

    @cached_property
    def _fitter(self) -> Any:
        class_name, names, _ = KINDS[self.kind]
        fitter = getattr(fitters(), class_name)()
        fitter.params_ = pd.Series([self.params[n] for n in names], index=list(names), dtype=float)
        return fitter

    def p_alive(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Probability that each customer is still active at ``T``."""
        with guarded():
            out = self._fitter.conditional_probability_alive(*_arrays(frequency, recency, T))
        return np.clip(np.asarray(out, dtype=float), 0.0, 1.0)

    def expected_purchases(self, t: float, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Expected number of purchases in ``(T, T + t]`` for each customer."""
        if t <= 0:
            return np.zeros(np.shape(frequency), dtype=float)
        x, t_x, T_ = _arrays(frequency, recency, T)
        if self.kind in ("bgnbd", "mbgnbd"):
            return _bg_expected_purchases(self.params, self.kind == "mbgnbd", t, x, t_x, T_)
        with guarded():
            out = self._fitter.conditional_expected_number_of_purchases_up_to_time(t, x, t_x, T_)
        return np.asarray(out, dtype=float)

    def p_no_purchase(self, t: float, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Probability of no purchase in ``(T, T + t]``.

        BG/NBD and MBG/NBD: ``(1 − P_alive) + P_alive · ((α + T) / (α + T + t))^(r + x)``
        (DOMAIN.md §2; given activity, the purchase rate's posterior is Gamma(r + x, α + T)).
        Pareto/NBD: the conditional PMF at zero (Fader, Hardie & Shang 2010, eq. 16).
        """
        x, t_x, T_ = _arrays(frequency, recency, T)
        if t <= 0:
            return np.ones(x.shape, dtype=float)
        if self.kind == "pareto":
            with guarded():
                out = self._fitter.conditional_probability_of_n_purchases_up_to_time(
                    0, t, x, t_x, T_
                )
            return np.clip(np.asarray(out, dtype=float), 0.0, 1.0)
        r, alpha = self.params["r"], self.params["alpha"]
        alive = self.p_alive(x, t_x, T_)
        silent_if_alive = ((alpha + T_) / (alpha + T_ + t)) ** (r + x)
        return np.clip((1.0 - alive) + alive * silent_if_alive, 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        """Return the model as JSON-compatible values."""
        return {
            "kind": self.kind,
            "params": {k: float(v) for k, v in self.params.items()},
            "time_unit": self.time_unit,
            "log_likelihood": float(self.log_likelihood),
            "penalizer": float(self.penalizer),
            "standard_errors": {k: float(v) for k, v in self.standard_errors.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PurchaseModel:
        """Rebuild a model from :meth:`to_dict` output; checks kind and parameter names."""
        kind = data["kind"]
        if kind not in KINDS:
            raise ValueError(f"unknown purchase model kind {kind!r}")
        names = KINDS[kind][1]
        params = {n: float(data["params"][n]) for n in names}
        if not all(np.isfinite(v) and v > 0 for v in params.values()):
            raise ValueError(f"parameters of {kind} must be positive and finite: {params}")
        return cls(
            kind=kind,
            params=params,
            time_unit=data["time_unit"],
            log_likelihood=float(data.get("log_likelihood", float("nan"))),
            penalizer=float(data.get("penalizer", 0.0)),
            standard_errors={k: float(v) for k, v in data.get("standard_errors", {}).items()},
        )


def _bg_expected_purchases(
    params: dict[str, float],
    modified: bool,
    t: float,
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
) -> np.ndarray:
    """lifetimes' conditional expected purchases of BG/NBD (or MBG/NBD) in ``(T, T + t]``.

    The Gauss hypergeometric term depends on ``(x, T)`` only: it is evaluated on the grid of
    distinct ``x`` and ``T`` values when that is smaller than the input (at a million
    customers some ten thousand evaluations instead of a million). Equal to
    lifetimes' ``conditional_expected_number_of_purchases_up_to_time`` (tested).
    """
    from scipy.special import hyp2f1

    r, alpha, a, b = (params[k] for k in ("r", "alpha", "a", "b"))
    x, t_x, T = np.broadcast_arrays(x, t_x, T)
    shape = x.shape
    x, t_x, T = x.ravel(), t_x.ravel(), T.ravel()
    x_codes, x_values = pd.factorize(x)
    T_codes, T_values = pd.factorize(T)
    if len(x_values) * len(T_values) <= len(x):  # the grid of distinct x and T is smaller
        kx, kT = np.repeat(x_values, len(T_values)), np.tile(T_values, len(x_values))
        index = x_codes * len(T_values) + T_codes
    else:
        kx, kT, index = x, T, slice(None)
    z = t / (alpha + kT + t)
    with np.errstate(all="ignore"):
        if modified:
            log_hyp = np.log(hyp2f1(r + kx, b + kx + 1, a + b + kx, z))
            first = (a + b + kx) / (a - 1)
        else:
            c = a + b + kx - 1
            log_hyp = np.log(hyp2f1(r + kx, b + kx, c, z))
            alternative = np.log(hyp2f1(a - 1 - r, a - 1, c, z)) + (a - 1 - r - b - kx) * np.log(
                1 - z
            )
            log_hyp = np.where(np.isinf(log_hyp), alternative, log_hyp)
            first = c / (a - 1)
        numerator = first * (
            1 - np.exp(log_hyp + (r + kx) * np.log((alpha + kT) / (alpha + t + kT)))
        )
        odds = ((alpha + T) / (alpha + t_x)) ** (r + x)
        if modified:
            denominator = 1 + (a / (b + x)) * odds
        else:
            denominator = 1 + np.where(x > 0, a / (b + x - 1) * odds, 0.0)
    return (numerator[index] / denominator).reshape(shape)


def _arrays(frequency: Any, recency: Any, T: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.asarray(frequency, dtype=float),
        np.asarray(recency, dtype=float),
        np.asarray(T, dtype=float),
    )


def _fit_once(kind: str, patterns: Patterns, penalizer: float) -> Fit:
    fit = fit_btyd(kind, patterns, penalizer)
    values = np.array(list(fit.params.values()))
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ArithmeticError(f"non-finite or non-positive parameters {fit.params}")
    if not fit.converged:
        raise ArithmeticError(f"the optimizer did not converge ({fit.message}) at {fit.params}")
    return fit


def fit_purchase_model(
    kind: str,
    rfm: pd.DataFrame,
    time_unit: str,
    penalizer: float = 0.0,
    retry_penalizer: float = 0.001,
) -> PurchaseModel:
    """Fit a BTYD purchase model on RFM data.

    Parameters
    ----------
    kind : {"bgnbd", "mbgnbd", "pareto"}
    rfm : pandas.DataFrame
        Columns ``frequency``, ``recency``, ``T`` (see :mod:`clv.features`).
    time_unit : str
        The unit of ``recency`` and ``T``, stored with the model.
    penalizer : float
        L2 penalizer of the first attempt.
    retry_penalizer : float
        Penalizer of the single retry after a failed first attempt (at least ``penalizer``).

    Returns
    -------
    PurchaseModel

    Raises
    ------
    ModelFitError
        If neither attempt converges to finite, positive parameters.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown purchase model {kind!r}; choose from {sorted(KINDS)}")
    if len(rfm) == 0:
        raise ModelFitError(f"Cannot fit {display_name(kind)}: there are no customers.")
    if not (rfm["frequency"] > 0).any():
        raise ModelFitError(
            f"Cannot fit {display_name(kind)} on {describe_pattern(rfm)}: with no repeat "
            "purchase at all, the purchase rate cannot be estimated (the fit degenerates to "
            "r → 0). Use a longer calibration period or check that customer ids are consistent."
        )
    table = rfm_patterns(rfm)
    patterns = Patterns.from_table(table)
    fit, coef = fit_with_retry(
        lambda coef: _fit_once(kind, patterns, coef),
        [penalizer, max(retry_penalizer, penalizer * 10)],
        what=display_name(kind),
        data=f"{describe_pattern(rfm)} ({len(table):,} unique patterns)",
        advice="Try a larger train.penalizer, a longer calibration period, or another model.",
    )
    return PurchaseModel(
        kind=kind,
        params=fit.params,
        time_unit=time_unit,
        log_likelihood=fit.log_likelihood,
        penalizer=coef,
        standard_errors=fit.standard_errors,
    )
