"""BTYD purchase models — BG/NBD, MBG/NBD, Pareto/NBD — with ``lifetimes``' likelihoods.

Fitting maximizes lifetimes' likelihoods (same time rescaling, log parameters and penalizer)
with :mod:`clv.likelihood`, on the unique ``(frequency, recency, T)`` patterns with their counts
as weights: the likelihood is a sum over customers, so this gives the parameters of lifetimes'
unweighted fit (tested to 1e-6) in a small fraction of the time. A fit that does not converge, or
ends with non-finite parameters, is retried once with a small L2 penalizer, then fails with a
:class:`~clv.errors.ModelFitError` that describes the data.

A fitted model is a :class:`PurchaseModel`: plain parameters (saved as JSON, never pickled) and
vectorized predictions for arrays of customers — the published formulas (equal to lifetimes'
where lifetimes' are finite, tested), evaluated in log space or through transformed
hypergeometric terms so that every score is finite for any history, the heaviest buyers included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, gammaln

from clv._lifetimes import fit_with_retry, fitters
from clv.errors import ModelFitError
from clv.likelihood import PARAMS, Fit, Patterns, fit_btyd, pareto_log_likelihood

#: Model kind → (lifetimes fitter class name, parameter names, display name).
KINDS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "bgnbd": ("BetaGeoFitter", PARAMS["bgnbd"], "BG/NBD"),
    "mbgnbd": ("ModifiedBetaGeoFitter", PARAMS["mbgnbd"], "MBG/NBD"),
    "pareto": ("ParetoNBDFitter", PARAMS["pareto"], "Pareto/NBD"),
}


#: The ensemble candidate: an equal-weight mixture of these models (:class:`EnsembleModel`).
ENSEMBLE = "ensemble"
ENSEMBLE_MEMBERS = ("bgnbd", "mbgnbd", "pareto")


def display_name(kind: str) -> str:
    """Return the usual name of a model kind (``"bgnbd"`` → ``"BG/NBD"``)."""
    return "Ensemble" if kind == ENSEMBLE else KINDS[kind][2]


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

    def expected_purchases_new(self, t: np.ndarray) -> np.ndarray:
        """Expected repeat purchases in ``(0, t]`` of a customer acquired at 0 (unconditional)."""
        return np.asarray(self._fitter.expected_number_of_purchases_up_to_time(t), dtype=float)

    @cached_property
    def _fitter(self) -> Any:
        class_name, names, _ = KINDS[self.kind]
        fitter = getattr(fitters(), class_name)()
        fitter.params_ = pd.Series([self.params[n] for n in names], index=list(names), dtype=float)
        return fitter

    def p_alive(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Probability that each customer is still active at ``T``.

        Evaluated in log space (:func:`_log_odds_dead`), so it is finite for any history.
        """
        x, t_x, T_ = _arrays(frequency, recency, T)
        with np.errstate(over="ignore"):
            return np.clip(expit(-self._log_odds_dead(x, t_x, T_)), 0.0, 1.0)

    def _log_odds_dead(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """``log((1 − P_alive) / P_alive)`` (``-inf`` where a customer must be alive)."""
        if self.kind == "pareto":
            return _pareto_log_odds_dead(self.params, x, t_x, T)
        return _bg_log_odds_dead(self.params, self.kind == "mbgnbd", x, t_x, T)

    def expected_purchases(self, t: float, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Expected number of purchases in ``(T, T + t]`` for each customer."""
        if t <= 0:
            return np.zeros(np.shape(frequency), dtype=float)
        x, t_x, T_ = _arrays(frequency, recency, T)
        if self.kind in ("bgnbd", "mbgnbd"):
            return _bg_expected_purchases(self.params, self.kind == "mbgnbd", t, x, t_x, T_)
        r, alpha, s, beta = (self.params[k] for k in ("r", "alpha", "s", "beta"))
        # Fader & Hardie (2005 note, eq. 41): P(alive) · (r + x)(β + T) / ((α + T)(s − 1))
        # · [1 − ((β + T) / (β + T + t))^(s − 1)], the bracket over (s − 1) taken with expm1 so
        # that s = 1 (where it becomes log(1 + t / (β + T))) is no special case.
        c, u = s - 1.0, np.log1p(t / (beta + T_))
        growth = u if abs(c) < 1e-12 else -np.expm1(-c * u) / c
        alive = self.p_alive(x, t_x, T_)
        return alive * (r + x) * (beta + T_) / (alpha + T_) * growth

    def p_no_purchase(self, t: float, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Probability of no purchase in ``(T, T + t]``.

        BG/NBD and MBG/NBD: ``(1 − P_alive) + P_alive · ((α + T) / (α + T + t))^(r + x)``
        (DOMAIN.md §2; given activity, the purchase rate's posterior is Gamma(r + x, α + T)).
        Pareto/NBD: the ratio of the likelihoods of the history observed to ``T + t`` and to
        ``T`` — seeing no purchase in ``(T, T + t]`` is exactly what extending the observation
        adds — which equals the conditional PMF at zero (Fader, Hardie & Shang 2010, eq. 16)
        and is finite for any ``x`` (lifetimes' form overflows for heavy buyers).
        """
        x, t_x, T_ = _arrays(frequency, recency, T)
        if t <= 0:
            return np.ones(x.shape, dtype=float)
        if self.kind == "pareto":
            p = self.params
            log_ratio = _pareto_log_likelihood(p, x, t_x, T_ + t) - _pareto_log_likelihood(
                p, x, t_x, T_
            )
            return np.clip(np.exp(log_ratio), 0.0, 1.0)
        r, alpha = self.params["r"], self.params["alpha"]
        alive = self.p_alive(x, t_x, T_)
        silent_if_alive = np.exp((r + x) * (np.log(alpha + T_) - np.log(alpha + T_ + t)))
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


@dataclass(frozen=True)
class EnsembleModel:
    """An equal-weight mixture of fitted purchase models: the ``ensemble`` candidate.

    Each score quantity is the mixture's — the members' P(alive), expected purchases and
    P(no purchase) averaged — so it is scored by the same code as any model (local, pyfunc,
    Spark) and saved as its members' parameters. Averaging forecasts of different models is a
    cheap hedge against picking the wrong one on a noisy holdout; it is a candidate, chosen only
    when it scores best.
    """

    members: tuple[PurchaseModel, ...]
    kind: str = ENSEMBLE
    log_likelihood: float = float("nan")
    penalizer: float = 0.0
    standard_errors: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Display name."""
        return f"Ensemble ({' + '.join(m.name for m in self.members)})"

    @property
    def time_unit(self) -> str:
        """Unit of recency, T and t (the members')."""
        return self.members[0].time_unit

    @property
    def params(self) -> dict[str, float]:
        """The members' parameters as ``kind.name`` (for printing and logging)."""
        return {f"{m.kind}.{k}": v for m in self.members for k, v in m.params.items()}

    def _mean(self, method: str, *args: Any) -> np.ndarray:
        return np.mean([getattr(m, method)(*args) for m in self.members], axis=0)

    def p_alive(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Mean of the members' P(alive)."""
        return self._mean("p_alive", frequency, recency, T)

    def expected_purchases(self, t: float, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Mean of the members' expected purchases in ``(T, T + t]``."""
        return self._mean("expected_purchases", t, frequency, recency, T)

    def p_no_purchase(self, t: float, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Mean of the members' probabilities of no purchase in ``(T, T + t]``."""
        return self._mean("p_no_purchase", t, frequency, recency, T)

    def expected_purchases_new(self, t: np.ndarray) -> np.ndarray:
        """Mean of the members' unconditional expected purchases."""
        return self._mean("expected_purchases_new", t)

    def to_dict(self) -> dict[str, Any]:
        """Return the model as JSON-compatible values (its members')."""
        return {
            "kind": ENSEMBLE,
            "time_unit": self.time_unit,
            "members": [m.to_dict() for m in self.members],
        }


def purchase_model_from_dict(data: dict[str, Any]) -> PurchaseModel | EnsembleModel:
    """Rebuild a purchase model (a single model or the ensemble) from its ``to_dict`` output."""
    if data.get("kind") == ENSEMBLE:
        members = tuple(PurchaseModel.from_dict(m) for m in data["members"])
        if not members:
            raise ValueError("the ensemble has no members")
        return EnsembleModel(members)
    return PurchaseModel.from_dict(data)


def _bg_expected_purchases(
    params: dict[str, float],
    modified: bool,
    t: float,
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
) -> np.ndarray:
    """Conditional expected purchases of BG/NBD (FHL 2005, eq. 10) or MBG/NBD in ``(T, T + t]``.

    ``P(alive) · (c / (a − 1)) · [1 − ((α + T) / (α + T + t))^(r + x) · ₂F₁(r + x, b + x + m;
    c; z)]`` with ``c = a + b + x − 1 + m``, ``z = t / (α + T + t)``, ``m = 1`` for MBG/NBD.
    The Gauss hypergeometric term depends on ``(x, T)`` only and is evaluated on the grid of
    distinct ``x`` and ``T`` values when that is smaller than the input (at a million customers
    some ten thousand evaluations instead of a million). ₂F₁ is taken through Euler's
    transformation ``(1 − z)^(c − A − B) ₂F₁(c − A, c − B; c; z)``, with the power merged into
    the bracket's: its parameters ``c − A``, ``c − B`` do not grow with ``x``, so it stays finite
    and accurate (1e-13 against mpmath, where the direct form overflows from x ≈ 1,000 or
    loses 1e-8) for any history; the direct form is the fallback. Equal to lifetimes'
    ``conditional_expected_number_of_purchases_up_to_time`` where that is finite (tested).
    """
    from scipy.special import hyp2f1

    r, alpha, a, b = (params[k] for k in ("r", "alpha", "a", "b"))
    m = 1.0 if modified else 0.0
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
    log_1mz = np.log(alpha + kT) - np.log(alpha + kT + t)
    A, B, c = r + kx, b + kx + m, a + b + kx - 1.0 + m
    with np.errstate(all="ignore"):
        euler = np.log(hyp2f1(c - A, c - B, c, z)) + (c - B) * log_1mz  # (c − A − B) + A
        direct = np.log(hyp2f1(A, B, c, z)) + A * log_1mz
        log_silent = np.where(np.isfinite(euler), euler, direct)
        bracket = (c / (a - 1.0)) * -np.expm1(log_silent)
    failed = ~np.isfinite(bracket)
    if failed.any():  # ₂F₁ out of reach (r or α in the millions): the integral it stands for
        bracket[failed] = [
            _bg_bracket_by_quadrature(r + xi, alpha + Ti, a, b + xi + m, t)
            for xi, Ti in zip(np.broadcast_to(kx, z.shape)[failed], kT[failed], strict=True)
        ]
    with np.errstate(over="ignore"):
        alive = expit(-_bg_log_odds_dead(params, modified, x, t_x, T))
    return (bracket[index] * alive).reshape(shape)


def _bg_bracket_by_quadrature(r: float, alpha: float, a: float, b: float, t: float) -> float:
    """Expected purchases in the next ``t`` of a customer alive now, with purchase rate
    λ ~ Gamma(r, α) and dropout probability p ~ Beta(a, b) after the history:
    ``E_p[(1 − (α / (α + p t))^r) / p]``, the integral that the closed form's ₂F₁ sums. Written
    as ``g(0) + E_p[g(p) − g(0)]`` so that the integrand has no singularity at p = 0, and taken
    by adaptive quadrature; used only where the closed form is not finite."""
    from scipy.integrate import quad
    from scipy.special import betaln

    def g(p: float) -> float:
        return -np.expm1(-r * np.log1p(p * t / alpha)) / p if p > 0 else r * t / alpha

    g0, log_norm = r * t / alpha, betaln(a, b)

    def integrand(p: float) -> float:
        log_density = (a - 1.0) * np.log(p) + (b - 1.0) * np.log1p(-p) - log_norm
        return (g(p) - g0) * np.exp(log_density) if 0 < p < 1 else 0.0

    value, _ = quad(integrand, 0.0, 1.0, limit=200, points=[min(0.5, 10 / (a + b))])
    return float(g0 + value)


def _bg_log_odds_dead(
    params: dict[str, float], modified: bool, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """``log((1 − P_alive) / P_alive)`` of BG/NBD: ``log(a / (b + x − 1)) + (r + x)
    log((α + T) / (α + t_x))``, alive (``-inf``) at x = 0 (FHL 2005, eq. 13); of MBG/NBD: the
    same with ``b + x`` and no exception at x = 0 (Batislam et al. 2007)."""
    r, alpha, a, b = (params[k] for k in ("r", "alpha", "a", "b"))
    shift = 0.0 if modified else 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = np.log(a / (b + x - shift)) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    return odds if modified else np.where(x > 0, odds, -np.inf)


def _pareto_log_odds_dead(
    params: dict[str, float], x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """``log((1 − P_alive) / P_alive)`` of Pareto/NBD: the log-likelihood's "alive" term against
    the whole (Fader & Hardie 2005 note, eq. 37), both from :mod:`clv.likelihood`."""
    log_p_alive = _pareto_log_alive_term(params, x, T) - _pareto_log_likelihood(params, x, t_x, T)
    log_p_alive = np.minimum(log_p_alive, 0.0)  # rounding above log 1
    with np.errstate(divide="ignore"):
        return np.log(-np.expm1(log_p_alive)) - log_p_alive


def _pareto_log_likelihood(
    params: dict[str, float], x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """Pareto/NBD log-likelihood of each history (:func:`clv.likelihood.pareto_log_likelihood`)."""
    x, t_x, T = np.broadcast_arrays(x, t_x, T)
    theta = np.array([params[n] for n in PARAMS["pareto"]], dtype=float)
    data = Patterns(x.ravel(), t_x.ravel(), T.ravel(), np.ones(x.size))
    with np.errstate(divide="ignore"):
        return pareto_log_likelihood(theta, data).reshape(x.shape)


def _pareto_log_alive_term(params: dict[str, float], x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Log of the likelihood's term for a customer still alive at ``T`` (Pareto/NBD)."""
    r, alpha, s, beta = (params[k] for k in ("r", "alpha", "s", "beta"))
    return (
        gammaln(r + x)
        - gammaln(r)
        + r * np.log(alpha)
        + s * np.log(beta)
        - (r + x) * np.log(alpha + T)
        - s * np.log(beta + T)
    )


def _arrays(frequency: Any, recency: Any, T: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.asarray(frequency, dtype=float),
        np.asarray(recency, dtype=float),
        np.asarray(T, dtype=float),
    )


#: A fitted parameter below this has run to the boundary of its space (e.g. BG/NBD's a, b → 0 on
#: a log where nobody seems to drop out): the fit is treated as not converged.
MIN_PARAMETER = 1e-8


def _fit_once(kind: str, patterns: Patterns, penalizer: float) -> Fit:
    fit = fit_btyd(kind, patterns, penalizer)
    values = np.array(list(fit.params.values()))
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ArithmeticError(f"non-finite or non-positive parameters {fit.params}")
    if np.any(values < MIN_PARAMETER):
        raise ArithmeticError(
            f"a shape parameter ran to the edge of its space (below {MIN_PARAMETER:g}: the data "
            f"do not identify the model, and its scores would not be numbers) at {fit.params}"
        )
    if not fit.converged:
        raise ArithmeticError(f"the optimizer did not converge ({fit.message}) at {fit.params}")
    return fit


def fit_purchase_model(
    kind: str,
    rfm: pd.DataFrame,
    time_unit: str,
    penalizer: float = 0.0,
    retry_penalizer: float = 0.001,
) -> PurchaseModel | EnsembleModel:
    """Fit a BTYD purchase model on RFM data.

    Parameters
    ----------
    kind : {"bgnbd", "mbgnbd", "pareto", "ensemble"}
        ``ensemble`` fits each of ``ENSEMBLE_MEMBERS`` and returns their mixture.
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
    PurchaseModel or EnsembleModel

    Raises
    ------
    ModelFitError
        If neither attempt converges to finite, positive parameters.
    """
    if kind == ENSEMBLE:
        return EnsembleModel(
            tuple(
                fit_purchase_model(k, rfm, time_unit, penalizer, retry_penalizer)
                for k in ENSEMBLE_MEMBERS
            )
        )
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


#: The model whose quantities feed the churn classifier, then its stand-ins (in this order) when
#: it does not converge on a log.
CHURN_FEATURE_MODELS = ("bgnbd", "mbgnbd", "pareto")


def fit_first(
    kinds: tuple[str, ...],
    rfm: pd.DataFrame,
    time_unit: str,
    penalizer: float = 0.0,
    retry_penalizer: float = 0.001,
) -> tuple[PurchaseModel | EnsembleModel, dict[str, str]]:
    """Fit the first of ``kinds`` that converges (:func:`fit_purchase_model`).

    Returns
    -------
    tuple
        The model, and the failures before it (kind → message).

    Raises
    ------
    ModelFitError
        If none converges, with every failure.
    """
    failures: dict[str, str] = {}
    for kind in kinds:
        try:
            return fit_purchase_model(kind, rfm, time_unit, penalizer, retry_penalizer), failures
        except ModelFitError as exc:
            failures[kind] = str(exc)
    raise ModelFitError(" ".join(failures.values()))


def churn_feature_model(
    rfm: pd.DataFrame, time_unit: str
) -> tuple[PurchaseModel | EnsembleModel, dict[str, str]]:
    """The BTYD model whose P(alive), expected purchases and P(no purchase) feed the churn
    classifier: BG/NBD, or the first of :data:`CHURN_FEATURE_MODELS` that converges."""
    return fit_first(CHURN_FEATURE_MODELS, rfm, time_unit)
