"""Business metrics in the stakeholders' language (DOMAIN.md §4), from the same cleaned log.

Definitions (each is stated in the report too):

- **lost**: a customer is lost on the day their inactivity reaches ``inactivity_days`` (365 by
  default): a purchase + ``inactivity_days`` with no purchase in between. A later purchase
  *reactivates* them. **Active** on a day: acquired by then and not in a lapse.
- per calendar month: active at the start and at the end, **new** (first purchase in the month),
  **lost** (lost day in the month), **reactivated**, **churn rate** = lost ÷ mean(active at
  start, at end), **retention rate** = (active at end − new) ÷ active at start (reactivated
  customers count as retained), **repeat-purchase rate** = share
  of the month's buyers whose purchase was not their first, revenue and revenue per active
  customer.
- the **period** (last ``period_months`` months, 12 by default): churn rate = customers lost in
  the period ÷ average number of active customers over its months; retention = (active at the
  end − new in the period) ÷ active at the start; acquisition rate = new customers per month;
  repeat-purchase rate = share of the period's buyers who bought on two or more days in it;
  revenue per customer = revenue ÷ average active customers (annualized).
- **simple CLV** = annual revenue per customer × expected lifetime in years − acquisition cost
  (1,000 × 10 − 1,000 = 9,000); expected lifetime = 1 ÷ annual churn rate unless given.
  **CLV : CAC** = (annual revenue × lifetime) ÷ CAC; **ROI** per customer = simple CLV ÷ CAC.
- **NPS** from 0–10 answers: promoters 9–10, passives 7–8, detractors 0–6; NPS = % promoters −
  % detractors, per month and over the period.
- **SERVQUAL**: gap = mean perception − mean expectation per dimension; weighted gap = Σ weight ×
  gap ÷ 100 (weights out of 100; default tangibles 11, reliability 32, responsiveness 22,
  assurance 19, empathy 16). Below 0: the service falls short of expectations.
"""

from __future__ import annotations

from clv.kpis.forecast import model_forecast, value_segments_table
from clv.kpis.lapses import EVENTS, lapse_counts, lapse_days, lapse_events
from clv.kpis.report import KpiReport, build_report
from clv.kpis.tables import (
    NO_VALUE,
    acquisition_costs,
    figure,
    month_buyers,
    monthly_table,
    nps_table,
    period_summary,
    servqual,
    simple_clv,
)

__all__ = [
    "EVENTS",
    "NO_VALUE",
    "KpiReport",
    "acquisition_costs",
    "build_report",
    "figure",
    "lapse_counts",
    "lapse_days",
    "lapse_events",
    "model_forecast",
    "month_buyers",
    "monthly_table",
    "nps_table",
    "period_summary",
    "servqual",
    "simple_clv",
    "value_segments_table",
]
