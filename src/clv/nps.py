"""Net Promoter Score: the one definition of its bands (DOMAIN.md §4).

Answers are whole numbers 0–10 to "how likely are you to recommend us?": promoters 9–10,
passives 7–8, detractors 0–6; NPS = % promoters − % detractors, from −100 to 100. The KPI
report and the churn model's survey features both use these bands.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Lowest answer of a promoter.
PROMOTER_MIN = 9
#: Highest answer of a detractor.
DETRACTOR_MAX = 6


def is_promoter(scores: Any) -> np.ndarray:
    """Whether each answer is a promoter's (9–10)."""
    return np.asarray(scores, dtype=float) >= PROMOTER_MIN


def is_detractor(scores: Any) -> np.ndarray:
    """Whether each answer is a detractor's (0–6).

    >>> is_detractor([6, 7, 10]).tolist()
    [True, False, False]
    """
    return np.asarray(scores, dtype=float) <= DETRACTOR_MAX


def band_shares(scores: Any) -> dict[str, float]:
    """Percent of promoters, passives and detractors among the answers (NaN without any).

    >>> band_shares([10, 9, 8, 2])
    {'promoters_pct': 50.0, 'passives_pct': 25.0, 'detractors_pct': 25.0}
    """
    s = np.asarray(scores, dtype=float)
    if s.size == 0:
        return dict.fromkeys(("promoters_pct", "passives_pct", "detractors_pct"), float("nan"))
    promoters, detractors = is_promoter(s), is_detractor(s)
    return {
        "promoters_pct": float(100 * promoters.mean()),
        "passives_pct": float(100 * (~promoters & ~detractors).mean()),
        "detractors_pct": float(100 * detractors.mean()),
    }


def nps(scores: Any) -> float:
    """Net Promoter Score: % promoters (9–10) − % detractors (0–6), from −100 to 100.

    >>> nps([10] * 70 + [7] * 15 + [3] * 15)
    55.0
    """
    s = np.asarray(scores, dtype=float)
    if s.size == 0:
        return float("nan")
    return float(100.0 * (int(is_promoter(s).sum()) - int(is_detractor(s).sum())) / s.size)
