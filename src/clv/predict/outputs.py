"""The purchase model's outputs (P(alive), expected purchases, P(no purchase), discounted
purchases) once per history pattern, in chunks with progress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd

from clv.bundle import Bundle
from clv.models.covariate_model import CovariateModel
from clv.models.groups import plain_models
from clv.models.patterns import rfm_patterns_index
from clv.value import discounted_purchases

#: Unique (frequency, recency, T) patterns scored per chunk (one progress step each).
CHUNK_SIZE = 100_000


Progress = Callable[[int, int], None]


#: What :func:`purchase_outputs` gives per customer.
PURCHASE_OUTPUTS = ("p_alive", "expected_purchases", "p_no_purchase", "discounted")


def purchase_outputs(
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
            part = purchase_outputs(
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
