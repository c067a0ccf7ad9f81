"""DeLong's test of two paired ROC AUCs (DeLong, DeLong & Clarke-Pearson 1988): the z a
churn score must beat to replace the BTYD score."""

from __future__ import annotations

import numpy as np


def delong_components(labels: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's placement values: per positive, the share of negatives it outranks; per negative,
    the share of positives that outrank it (ties count one half)."""
    from scipy.stats import rankdata

    pos, neg = score[labels == 1], score[labels == 0]
    all_ranks = rankdata(np.r_[pos, neg])
    m, n = len(pos), len(neg)
    v10 = (all_ranks[:m] - rankdata(pos)) / n
    v01 = 1.0 - (all_ranks[m:] - rankdata(neg)) / m
    return v10, v01


def paired_auc_test(
    labels: np.ndarray, challenger: np.ndarray, baseline: np.ndarray
) -> dict[str, float]:
    """ROC AUC of two scores on the same customers and DeLong's z for their difference
    (positive when ``challenger`` ranks better)."""
    c = delong_components(labels, challenger)
    b = delong_components(labels, baseline)
    gain, se = delong_gain(c, b)
    return {
        "challenger_auc": float(c[0].mean()),
        "baseline_auc": float(b[0].mean()),
        "z": gain / se if se > 0 else 0.0,
    }


def delong_gain(
    challenger: tuple[np.ndarray, np.ndarray], baseline: tuple[np.ndarray, np.ndarray]
) -> tuple[float, float]:
    """AUC gain of one score over another on the same customers, and its DeLong standard
    error, from their placement values (:func:`delong_components`)."""
    d10, d01 = challenger[0] - baseline[0], challenger[1] - baseline[1]
    se = float(np.sqrt(d10.var(ddof=1) / len(d10) + d01.var(ddof=1) / len(d01)))
    return float(challenger[0].mean()) - float(baseline[0].mean()), se
