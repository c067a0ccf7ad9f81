"""Interval calibration on the holdout: each frequency group's share inside its interval beside
the model's own probability, the log score, the PIT histogram and the totals' ranges."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from clv.config import DEFAULT_INTERVAL, Config
from clv.evaluation.candidates import Candidates
from clv.evaluation.result import best_model
from clv.evaluation.split import CalibrationTable, Split
from clv.models.ensemble import EnsembleModel
from clv.models.fitted import PurchaseModel
from clv.models.gamma_gamma import SpendModel
from clv.models.groups import SCORE_ROWS, blocks, plain_models
from clv.stages import StageLog

#: Calibration-frequency groups of the interval coverage table: (lowest, highest, label).
FREQUENCY_GROUPS = (
    (0, 0, "0"),
    (1, 1, "1"),
    (2, 2, "2"),
    (3, 5, "3–5"),
    (6, 10, "6–10"),
    (11, np.inf, "11+"),
)


#: Bins of the PIT histogram.
PIT_BINS = 10


def interval_calibration(
    model: PurchaseModel | EnsembleModel,
    spend: SpendModel | None,
    cal: pd.DataFrame,
    duration: float,
    level: float,
    size: int = SCORE_ROWS,
) -> dict[str, Any]:
    """How well the predictive distributions held on the holdout (the scorecard's
    ``intervals``), over blocks of at most ``size`` customers.

    - ``coverage``: the share of customers whose holdout purchases fell inside their ``level``
      interval, beside ``expected_coverage``, the model's own probability of that (whole counts
      make an interval hold more than ``level``: a calibrated model has coverage ≈ expected
      coverage), overall and ``by_frequency`` of calibration purchases;
    - ``log_score``: the mean negative log predictive probability of the actual count (a proper
      score of the whole distribution; lower is better);
    - ``pit``: the non-randomized PIT histogram for counts (Czado, Gneiting & Held 2009): the
      mass of each of :data:`PIT_BINS` equal bins, all ``1 / bins`` when calibrated; a U shape
      means intervals too narrow, a hump too wide;
    - ``totals``: the ranges of total holdout purchases and (with spend) revenue, including
      parameter uncertainty, with the actual totals and whether they fell inside.
    """
    from clv.intervals import forecast, purchase_distribution

    x, t_x, T = (cal[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    y = cal["frequency_holdout"].to_numpy(dtype=float)
    bounds = [
        *FREQUENCY_GROUPS,
        (FREQUENCY_GROUPS[-1][1] + 1, np.inf, f"{FREQUENCY_GROUPS[-1][1] + 1}+"),
    ]
    edges = np.linspace(0.0, 1.0, PIT_BINS + 1)
    # sums over customers, taken per distinct (x, t_x, T, y) of a block of customers weighted
    # by its count: no per-customer interval arrays and no customers × 11 PIT table (with
    # them this stage rose 1.3 GB at 5.5M customers). ``total`` is kept apart from the
    # frequency groups, which cover whole counts only
    members, covered, inside = (np.zeros(len(bounds)) for _ in range(3))
    total, log_loss, pit = np.zeros(2), 0.0, np.zeros(PIT_BINS)  # total: covered, inside
    forecasts = []
    for rows, plain, plain_spend in plain_models(model, spend, cal):  # one, or one per group
        for block in blocks(rows, size):
            keys = pd.DataFrame({"x": x[block], "t_x": t_x[block], "T": T[block], "y": y[block]})
            codes = keys.groupby(list(keys), sort=False).ngroup().to_numpy()
            first = ~pd.Series(codes).duplicated().to_numpy()
            unique = keys.to_numpy()[first]  # in the order of the codes (first appearance)
            weight = np.bincount(codes, minlength=len(unique)).astype(float)
            ux, uy = unique[:, 0], unique[:, 3]
            dist = purchase_distribution(plain, duration, *unique[:, :3].T, level, observed=uy)
            hit = ((uy >= dist.low) & (uy <= dist.high)).astype(float)
            total += np.stack([hit, dist.inside]) @ weight
            for g, (lowest, highest, _) in enumerate(bounds):
                w = np.where((ux >= lowest) & (ux <= highest), weight, 0.0)
                members[g] += w.sum()
                covered[g] += w @ hit
                inside[g] += w @ dist.inside
            with np.errstate(divide="ignore", invalid="ignore"):
                mass = np.where(dist.at > dist.below, dist.at - dist.below, 1.0)
                cdf = np.clip((edges[None, :] - dist.below[:, None]) / mass[:, None], 0.0, 1.0)
                log_loss -= float(weight @ np.log(np.maximum(dist.at - dist.below, 1e-300)))
            pit += weight @ np.diff(cdf, axis=1)
        forecasts.append(
            forecast(
                plain,
                plain_spend,
                duration,
                x[rows],
                t_x[rows],
                T[rows],
                monetary_value=cal["monetary_value"].to_numpy(dtype=float)[rows] if spend else None,
                level=level,
                customers=False,  # the totals' ranges only: no per-customer value intervals
            ).ranges
        )
    n = len(y)
    groups = [
        {
            "frequency": name,
            "customers": int(members[g]),
            "coverage": float(covered[g] / members[g]),
            "expected_coverage": float(inside[g] / members[g]),
        }
        for g, (_, _, name) in enumerate(bounds)
        if members[g]
    ]
    totals = _totals(forecasts, y, cal if spend is not None else None)
    return {
        "level": level,
        "coverage": float(total[0] / n) if n else float("nan"),
        "expected_coverage": float(total[1] / n) if n else float("nan"),
        "log_score": log_loss / n if n else float("nan"),
        "by_frequency": groups,
        "pit": (pit / n if n else np.full(PIT_BINS, np.nan)).tolist(),
        "totals": totals,
    }


def _totals(
    forecasts: list[dict[str, Any]], y: np.ndarray, cal: pd.DataFrame | None
) -> dict[str, Any]:
    """The ranges of total holdout purchases and (given ``cal``, with spend) revenue, added over
    the groups' forecasts, with the actual totals and whether they fell inside."""
    from clv.intervals import add_ranges

    ranges = {name: add_ranges([f[name] for f in forecasts]) for name in forecasts[0]}
    totals = {}
    actuals = {"purchases": y.sum()}
    if cal is not None:
        actuals["clv"] = cal["revenue_holdout"].to_numpy(dtype=float).sum()
    for name, actual in actuals.items():
        interval = ranges[name].to_dict()
        totals["revenue" if name == "clv" else name] = interval | {
            "actual": float(actual),
            "inside": bool(interval["low"] <= actual <= interval["high"]),
        }
    return totals


def coverage_stage(
    split: Split,
    table: CalibrationTable,
    fits: Candidates,
    spend: SpendModel | None,
    card: dict[str, Any],
    config: Config,
    report: StageLog,
) -> None:
    """The best candidate's intervals scored on the holdout (the optional stage
    ``interval_calibration``): the scorecard's ``intervals``."""
    best = best_model(card, fits.models, config.train.selection_metric)
    model = fits.models[best]
    level = config.score.interval or DEFAULT_INTERVAL
    intervals = report.optional(
        "interval_calibration",
        lambda: interval_calibration(model, spend, table.frame, split.duration, level),
        "the scorecard has no interval coverage (the bundle's intervals are unchanged)",
    )
    if intervals is not None:
        card["intervals"] = intervals | {"model": best}
        report(
            f"Scored {model.name}'s {intervals['level']:.0%} intervals on the holdout: "
            f"coverage {intervals['coverage']:.1%} (the model expects "
            f"{intervals['expected_coverage']:.1%})"
        )
