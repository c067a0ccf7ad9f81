"""What every purchase model is, and the one pattern-weighted maximum-likelihood fit they share.

A purchase model (:class:`PurchaseProcess`) is its mathematics, with no state: parameter names
and bounds, the mean negative log-likelihood over weighted patterns (with its gradient where it
has one in closed form), and the score quantities given parameters — P(alive) through its log
odds, expected purchases and P(no purchase) in ``(T, T + t]``. :func:`fit_patterns` maximizes any
of them with lifetimes' conventions (log parameters, time rescaled so that the largest ``T`` is 1,
the mean negative log-likelihood per customer plus ``penalizer · Σ θ²`` on the rescaled
parameters), on distinct ``(x, t_x, T)`` patterns weighted by their counts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from clv.models.optimize import Fit, fit_patterns
from clv.models.patterns import Patterns


class PurchaseProcess(ABC):
    """The mathematics of one BTYD purchase model; one subclass per model, one module each.

    Class attributes name the model (``kind`` is its config name), its parameters in optimizer
    order, which of them are times or rates (they scale with the time unit or its inverse),
    their bounds, lifetimes' fitter of the same model, and the optimizer's start and gradient
    tolerance. Parameters are
    passed as a dict of name → value in the data's time unit; histories as float arrays.
    """

    kind: ClassVar[str]
    name: ClassVar[str]
    params: ClassVar[tuple[str, ...]]
    time_params: ClassVar[tuple[str, ...]]
    #: Parameters that are rates per unit of time (they scale with the inverse time unit).
    rate_params: ClassVar[tuple[str, ...]] = ()
    #: Parameters that may run to 0 because the model has a proper limit there (GG/NBD's
    #: ``b`` and ``β``: constant hazard, Pareto/NBD); others below
    #: :data:`~clv.models.fitting.MIN_PARAMETER` make a fit fail.
    limit_params: ClassVar[tuple[str, ...]] = ()
    #: Whether the fit reads the times between purchases (``log_gap_sum``), not only patterns.
    needs_log_gaps: ClassVar[bool] = False
    #: Parameters on the real line, fitted as they are (covariate coefficients); all others are
    #: positive and fitted in logs.
    unconstrained: ClassVar[tuple[str, ...]] = ()
    #: How static covariates z enter the model (:mod:`clv.models.covariates`): for each
    #: process (``purchase``, ``dropout``), the parameters whose logs shift by
    #: ``sign · γᵀz``. Empty: the model takes no covariates.
    covariate_links: ClassVar[dict[str, tuple[tuple[str, float], ...]]] = {}
    #: lifetimes' fitter of the same model, if it has one.
    lifetimes_fitter: ClassVar[str | None] = None
    #: Starting value of every log parameter of the time-rescaled problem (lifetimes' default).
    start: ClassVar[float]
    #: Gradient tolerance of BFGS on the mean negative log-likelihood.
    gtol: ClassVar[float]
    #: Whether :meth:`objective` returns the gradient (else the fit differentiates numerically).
    analytic_gradient: ClassVar[bool]

    def costly_scores(self, params: dict[str, float]) -> bool:
        """Whether a score at ``params`` costs enough per history (hypergeometric functions,
        quadratures, sums over phases) that :class:`~clv.models.fitted.PurchaseModel` takes
        it once per distinct ``(x, t_x, T)`` history rather than once per customer (default:
        no; closed forms are cheaper than finding the distinct histories)."""
        return False

    @property
    def bounds(self) -> dict[str, tuple[float, float]]:
        """Open interval of each parameter (all BTYD parameters are positive)."""
        return dict.fromkeys(self.params, (0.0, np.inf))

    def fit(
        self, data: Patterns, penalizer: float, start: Mapping[str, float] | None = None
    ) -> Fit:
        """Maximum-likelihood fit on weighted patterns (:func:`fit_patterns`), from ``start``
        when given (a fit's parameters: e.g. the same model on a neighbouring window); a model
        with a discrete parameter searches over it here."""
        return fit_patterns(self, data, penalizer, start_params=start)

    def prepare(self, data: Patterns) -> Any:
        """Whatever :meth:`objective` reuses across evaluations on ``data`` (default: nothing)."""
        return None

    @abstractmethod
    def objective(
        self, log_params: np.ndarray, data: Patterns, penalizer: float, prepared: Any
    ) -> tuple[float, np.ndarray | None]:
        """Mean negative log-likelihood per customer plus ``penalizer · Σ θ²``, and its gradient
        in log parameters (``None`` unless :attr:`analytic_gradient`)."""

    @abstractmethod
    def log_likelihood(self, params: dict[str, float], data: Patterns) -> float:
        """Total log-likelihood of ``data`` at ``params`` (no penalty, the data's time unit)."""

    @abstractmethod
    def log_odds_dead(
        self, params: dict[str, float], x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        """``log((1 − P_alive) / P_alive)`` of each history (``-inf`` where it must be alive)."""

    @abstractmethod
    def expected_purchases(
        self, params: dict[str, float], t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        """Expected number of purchases in ``(T, T + t]``, ``t > 0``."""

    def p_no_purchase(
        self, params: dict[str, float], t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        """Probability of no purchase in ``(T, T + t]``, ``t > 0``: by default the predictive
        PMF at 0 (:meth:`purchase_pmf`)."""
        shape = np.broadcast(x, t_x, T).shape
        return self.purchase_pmf(params, t, x, t_x, T, 0)[:, 0].reshape(shape)

    def expected_purchases_new(self, params: dict[str, float], t: np.ndarray) -> np.ndarray:
        """Expected repeat purchases in ``(0, t]`` of a customer acquired at 0 (unconditional);
        by default lifetimes' ``expected_number_of_purchases_up_to_time``."""
        return np.asarray(
            self.lifetimes_model(params).expected_number_of_purchases_up_to_time(t), dtype=float
        )

    def lifetimes_model(self, params: dict[str, float]) -> Any:
        """lifetimes' fitter of this model set to ``params`` (for its closed forms).

        Raises
        ------
        NotImplementedError
            When lifetimes does not have the model.
        """
        from clv._lifetimes import fitters

        if self.lifetimes_fitter is None:
            raise NotImplementedError(f"lifetimes has no {self.name} model")
        fitter = getattr(fitters(), self.lifetimes_fitter)()
        fitter.params_ = pd.Series([params[n] for n in self.params], index=list(self.params))
        return fitter

    @abstractmethod
    def purchase_pmf(
        self,
        params: dict[str, float],
        t: float,
        x: np.ndarray,
        t_x: np.ndarray,
        T: np.ndarray,
        k_max: int,
    ) -> np.ndarray:
        """Predictive distribution of the purchases in ``(T, T + t]`` given each history:
        ``P(X(t) = k | x, t_x, T)`` for ``k = 0 … k_max``, shape ``(len(x), k_max + 1)``
        (1-D histories; the mass above ``k_max`` is left out)."""


def flat_histories(
    x: Any, t_x: Any, T: Any
) -> tuple[tuple[int, ...], np.ndarray, np.ndarray, np.ndarray]:
    """Histories broadcast together: their common shape, and each as a flat float array."""
    x, t_x, T = np.broadcast_arrays(x, t_x, T)
    return x.shape, *(np.ravel(v).astype(float) for v in (x, t_x, T))


def alive_mixture(
    alive: np.ndarray,
    x: np.ndarray,
    T: np.ndarray,
    if_alive: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """A predictive PMF from P(alive at T) and the PMF of a customer alive at T.

    ``P(X = k) = P_alive · P(X = k | alive) + (1 − P_alive) · [k = 0]``. Given alive, the
    models' future depends on the history through ``x`` and ``T`` alone (the posterior of the
    rates), not ``t_x``: ``if_alive(x, T)`` is called once on the distinct ``(x, T)`` pairs, of
    which a log has far fewer than ``(x, t_x, T)`` patterns.
    """
    which, pairs = pd.factorize(x + 1j * T)  # hashing one complex key beats sorting rows
    pmf = alive[:, None] * if_alive(pairs.real, pairs.imag)[which]
    pmf[:, 0] += 1.0 - alive
    return pmf


def nb_exposure_mixture(
    rx: np.ndarray, a_post: np.ndarray, exposure: np.ndarray, weight: np.ndarray, k_max: int
) -> np.ndarray:
    """PMF of purchases ``k = 0 … k_max`` of customers alive now whose purchase rate is
    Gamma(``rx``, ``a_post``) and who stay alive for an exposure ``exposure[:, j]`` with
    probability ``weight[:, j]`` (a quadrature of the remaining lifetime, its point mass at
    the window's end included): the mixture of NB(``rx``, u / (``a_post`` + u)) over u."""
    k = np.arange(k_max + 1.0)
    log_choose = log_nb_coefficients(rx, k_max)
    log_total = np.log(a_post[:, None] + exposure)
    # NB(rx, ·) at 0, by log1p: a difference of logs of a_post ~ 1e8 times rx ~ 1e7 lost 1e-7
    log_none = -rx[:, None] * np.log1p(exposure / a_post[:, None])
    with np.errstate(divide="ignore"):
        log_odds = np.log(exposure) - log_total
        log_front = log_none + np.log(weight)
    mixture = np.zeros((len(rx), k.size))
    for node in range(exposure.shape[1]):  # one (histories × k) table at a time
        mixture += np.exp(log_choose + log_front[:, node, None] + log_odds[:, node, None] * k)
    return mixture


def log_nb_coefficients(size: np.ndarray, k_max: int) -> np.ndarray:
    """``log(Γ(size + k) / (Γ(size) · k!))`` for ``k = 0 … k_max``, one row per ``size``: the
    running sums of ``log((size + j − 1) / j)``. The difference of the two gamma functions
    loses ~1e-7 at a shape near 1e7 (a model shipped at its Poisson limit), enough for a
    predictive table never to sum to 1 − 1e-7 and to be widened to its largest size; the sums
    stay exact to ~1e-13."""
    step = np.arange(1.0, k_max + 1.0)
    terms = np.log(size[:, None] + step - 1.0) - np.log(step)
    return np.concatenate([np.zeros((len(size), 1)), np.cumsum(terms, axis=1)], axis=1)


def logaddexp(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``numpy.logaddexp`` for finite ``a``, in a third of its time."""
    high = np.maximum(a, b)
    return high + np.log1p(np.exp(np.minimum(a, b) - high))
