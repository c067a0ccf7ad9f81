"""What every settings section shares, and the defaults other modules name."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

#: Level of the predictive intervals and ranges when none is configured.
DEFAULT_INTERVAL = 0.8


#: Value tiers from the top by predicted CLV: top 10 %, next 20 %, then the rest
#: (:mod:`clv.segments`).
DEFAULT_SEGMENTS: dict[str, float] = {"top": 0.10, "high": 0.20}


#: z above which a paired difference counts, one-sided at 5 % (promotion, churn blends).
ONE_SIDED_Z_5PCT = 1.645


#: Names of the transaction logs that ship inside ``lifetimes`` (see :mod:`clv.data`).
EMBEDDED_DATASETS = ("cdnow", "cdnow-sample")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


SERVQUAL_DIMENSIONS = ("tangibles", "reliability", "responsiveness", "assurance", "empathy")
