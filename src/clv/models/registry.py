"""Config names → purchase models: the one place that lists them.

Adding a purchase model is a module with a :class:`~clv.models.base.PurchaseProcess` subclass,
its test, and its line in :data:`PURCHASE_MODELS`; ``train.candidates``, fitting, scoring, the
bundle and MLflow find it here.
"""

from __future__ import annotations

from clv.models.base import PurchaseProcess
from clv.models.beta_geo import BetaGeo
from clv.models.gompertz_nbd import GammaGompertzNBD
from clv.models.mbg_cnbd import MBGCNBD
from clv.models.modified_beta_geo import ModifiedBetaGeo
from clv.models.nbd import NBD
from clv.models.pareto_nbd import ParetoNBD

#: Every purchase model by its config name (``train.candidates``).
PURCHASE_MODELS: dict[str, PurchaseProcess] = {
    process.kind: process
    for process in (
        BetaGeo(),
        ModifiedBetaGeo(),
        ParetoNBD(),
        GammaGompertzNBD(),
        MBGCNBD(),
        NBD(),
    )
}
#: The limit of every model with dropout when a log shows nobody leaving (:mod:`clv.models.nbd`).
NO_DROPOUT = "nbd"

#: Models that are the limit of another: Pareto/NBD is GG/NBD at ``b → 0`` (Bemmaor & Glady
#: 2012), MBG/NBD is MBG/CNBD-k at ``k = 1`` (Platzer & Reutterer 2016). When both compete and
#: the larger model's fit is the smaller one's, the larger competes for both.
NESTED_IN = {"pareto": "ggomnbd", "mbgnbd": "mbgcnbd"}

#: The ensemble candidate: an equal-weight mixture of these models (:mod:`clv.models.ensemble`).
ENSEMBLE = "ensemble"
ENSEMBLE_MEMBERS = ("bgnbd", "mbgnbd", "pareto")
#: The stacked candidate: the mixture of every other single candidate that converged, weighted
#: to maximise the holdout log score (:func:`clv.models.ensemble.stack_weights`).
STACKED = "stacked"
#: The candidates that are mixtures of other candidates' fits (fitted after them).
MIXTURES = (ENSEMBLE, STACKED)

#: Suffix of a candidate refitted with the config's static covariates
#: (:mod:`clv.models.covariates`), e.g. ``pareto_covariates`` (a name MLflow takes in metric
#: names).
WITH_COVARIATES = "_covariates"

#: Every name ``train.candidates`` accepts.
CANDIDATES = (*PURCHASE_MODELS, *MIXTURES)

#: The model whose quantities feed the churn classifier, then its stand-ins (in this order) when
#: it does not converge on a log.
CHURN_FEATURE_MODELS = ("bgnbd", "mbgnbd", "pareto")


def purchase_process(kind: str) -> PurchaseProcess:
    """The purchase model named ``kind`` in the config.

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.
    """
    try:
        return PURCHASE_MODELS[kind]
    except KeyError:
        raise ValueError(
            f"unknown purchase model {kind!r}; choose from {sorted(PURCHASE_MODELS)}"
        ) from None


def base_kind(kind: str) -> str:
    """The model of a candidate name (``"pareto_covariates"`` → ``"pareto"``)."""
    return kind.removesuffix(WITH_COVARIATES)


def display_name(kind: str) -> str:
    """Return the usual name of a model kind (``"bgnbd"`` → ``"BG/NBD"``,
    ``"pareto_covariates"`` → ``"Pareto/NBD + covariates"``)."""
    if kind.endswith(WITH_COVARIATES):
        return f"{display_name(base_kind(kind))} + covariates"
    if kind in MIXTURES:
        return kind.capitalize()
    return purchase_process(kind).name
