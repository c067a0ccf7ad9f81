"""How sure a forecast is: customer-level predictive intervals and ranges of business totals.

Every purchase model gives the exact predictive distribution of a customer's purchases in the
next ``t``, ``P(X(t) = k | x, t_x, T)`` (its module's ``purchase_pmf``); it depends on the
history pattern only, so it is evaluated once per distinct ``(x, t_x, T)``. From it:

- **purchase intervals** (:func:`purchase_distribution`): the equal-tailed ``level`` interval
  ``[low, high]`` — the smallest counts whose predictive CDF reaches ``(1 − level) / 2`` and
  ``(1 + level) / 2``. Counts are whole numbers, so an interval covers *at least* ``level`` of
  the probability (e.g. ``[0, 0]`` for a customer with P(no purchase) = 0.95 covers 95 %).
- **value intervals** (:func:`value_interval`): the spend of the future purchases — each one
  Gamma(p, ν), with the customer's Gamma-Gamma posterior ν ~ Gamma(p·x + q, v + x·m) — summed
  over the purchase distribution: ``P(value = 0)`` is exactly P(no purchase), and the positive
  part is a Gamma matched to the exact first two moments (customer value has no closed-form
  quantiles; against the exact mixture, :func:`exact_value_quantiles`, at the CDNOW
  parameters the upper bound is within 11 % for repeat buyers and up to ~20 % too high for
  customers without repeat purchases, whose spend is the heavy-tailed prior). Discounting scales
  each customer's value by the ratio of discounted to undiscounted expected purchases.
- **business totals** (:func:`total_range`): customers are independent given the parameters,
  so a total's process variance is the sum of the customers'; the parameters' own uncertainty
  (the Laplace approximation: the fits' inverse observed information, in log parameters) adds
  by the delta method — it is what dominates at scale, where thousands of customers' noise
  averages out but every customer shares the same parameters. The range is normal around the
  point total (a sum of many independent terms). For the ensemble, the members' parameter
  uncertainties are added as if perfectly correlated (they are fitted on the same data), an
  upper bound.

Customer-level intervals use the fitted parameters: one customer's count is far more uncertain
than the parameters make it. Measured on CDNOW (52 weeks, 80 % intervals, mixture over 200
Laplace draws of the parameters against the plug-in distribution): a bound moved for 0.34 %
(BG/NBD) and 0.55 % (Pareto/NBD) of the 2,357-customer sample and 0.16 % / 0.06 % of the 23,570
customers, by one count. At the totals' scale the parameters matter (a third of the spread
on CDNOW), so the totals carry them.
"""

from __future__ import annotations

from clv.intervals.forecasting import Forecast, forecast
from clv.intervals.purchases import (
    CELLS,
    FIRST_K,
    MAX_K,
    TAIL,
    PurchaseDistribution,
    full_pmf,
    purchase_distribution,
    purchase_moments,
    quantile_levels,
)
from clv.intervals.ranges import (
    PatternSpend,
    Range,
    Sensitivity,
    add_ranges,
    make_range,
    pattern_ranges,
    pattern_spend,
    purchase_sensitivity,
)
from clv.intervals.value import (
    SpendTerms,
    ValueInterval,
    delta_sd,
    exact_value_quantiles,
    spend_terms,
    value_interval,
    value_moments,
)

__all__ = [
    "CELLS",
    "FIRST_K",
    "MAX_K",
    "TAIL",
    "Forecast",
    "PatternSpend",
    "PurchaseDistribution",
    "Range",
    "Sensitivity",
    "SpendTerms",
    "ValueInterval",
    "add_ranges",
    "delta_sd",
    "exact_value_quantiles",
    "forecast",
    "full_pmf",
    "make_range",
    "pattern_ranges",
    "pattern_spend",
    "purchase_distribution",
    "purchase_moments",
    "purchase_sensitivity",
    "quantile_levels",
    "spend_terms",
    "value_interval",
    "value_moments",
]
