"""What a training run produced."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from clv.bundle import Bundle
from clv.data.log import TransactionLog
from clv.evaluation import (
    Evaluation,
)
from clv.kpis import KpiReport
from clv.stages import StageLog


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    bundle: Bundle
    path: Path
    evaluation: Evaluation
    log: TransactionLog
    notices: list[str] = field(default_factory=list)
    run_id: str | None = None
    registry: dict[str, object] = field(default_factory=dict)
    kpis: KpiReport | None = None
    stage_log: list[str] = field(default_factory=list)
    stages: StageLog | None = field(default=None, repr=False)
