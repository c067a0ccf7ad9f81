"""The stage runner: an optional stage that fails degrades (a line, a reason, a fallback), what
is not the stage's failure still ends the run, and a churn window never starts where customers
have almost no history."""

from __future__ import annotations

import pandas as pd
import pytest

from clv.background import StoppedError
from clv.churn import MIN_CUSTOMERS, leak_free_window
from clv.errors import DataValidationError, ModelFitError
from clv.outputs import OutputPathError
from clv.stages import OPTIONAL_STAGES, StageLog


def _fails(exc: BaseException):
    def work():
        raise exc

    return work


def test_a_failing_optional_stage_returns_its_fallback_and_says_why():
    seen: list[str] = []
    stages = StageLog(seen.append)
    got = stages.optional(
        "gamma_gamma", _fails(ModelFitError("p ran to 1e9")), "no value scores", "fallback"
    )
    assert got == "fallback"
    assert stages.skipped == {
        "gamma_gamma": {"reason": "p ran to 1e9", "instead": "no value scores"}
    }
    assert len(seen) == 1 and "Skipped the Gamma-Gamma spend model: p ran to 1e9" in seen[0]
    assert any("Traceback" in line and "ModelFitError" in line for line in stages.lines)
    assert stages.notices() == [
        "Skipped the Gamma-Gamma spend model: p ran to 1e9; no value scores."
    ]


def test_a_stage_that_works_leaves_no_trace():
    stages = StageLog()
    assert stages.optional("kpis", lambda: 41 + 1, "no KPIs") == 42
    assert stages.skipped == {} and stages.lines == []


def test_a_bug_degrades_with_its_type_named():
    stages = StageLog()
    assert stages.optional("figures", _fails(KeyError("p_alive")), "no figures") is None
    assert stages.skipped["figures"]["reason"] == "KeyError: 'p_alive'"


@pytest.mark.parametrize(
    "exc",
    [
        StoppedError("stopped"),
        MemoryError(),
        OutputPathError("--out is the input"),
        KeyboardInterrupt(),
    ],
)
def test_what_is_not_the_stages_failure_ends_the_run(exc):
    stages = StageLog()
    with pytest.raises(type(exc)):
        stages.optional("churn_classifier", _fails(exc), "no classifier")
    assert stages.skipped == {}


def test_only_named_stages_are_optional():
    with pytest.raises(KeyError, match="not an optional stage"):
        StageLog().optional("purchase_models", lambda: None, "nothing")
    assert {"churn_classifier", "churn_evaluation", "gamma_gamma", "kpis"} <= set(OPTIONAL_STAGES)


def _cohort(first_days: list[int]) -> pd.DataFrame:
    """One purchase per customer on the given days after 2024-01-01, plus one more later."""
    day0 = pd.Timestamp("2024-01-01")
    rows = [(f"c{i}", day0 + pd.Timedelta(days=d)) for i, d in enumerate(first_days)]
    rows += [(f"c{i}", day0 + pd.Timedelta(days=d + 3)) for i, d in enumerate(first_days)]
    return pd.DataFrame(rows, columns=["customer_id", "date"]).assign(amount=10.0)


def test_a_full_window_needs_customers_with_half_the_horizon_of_history():
    log = _cohort([0] * MIN_CUSTOMERS + [100] * 10)
    cut = pd.Timestamp("2024-01-01") + pd.Timedelta(days=200)
    start, note = leak_free_window(log, cut, 100)  # 100 of labels, 50 of history: 150 ≤ 200
    assert start == cut - pd.Timedelta(days=100) and note is None


def test_a_young_log_gets_a_shortened_window_with_history_before_it():
    # the CDNOW first-year case: everyone bought in the first days, the horizon is half the log
    log = _cohort(list(range(MIN_CUSTOMERS)) * 2)
    cut = pd.Timestamp("2024-01-01") + pd.Timedelta(days=182)
    start, note = leak_free_window(log, cut, 182, "week")
    labels = (cut - start).days
    first_50th = pd.Timestamp("2024-01-01") + pd.Timedelta(days=MIN_CUSTOMERS // 2 - 1)
    assert 91 <= labels < 182  # shortened, to no less than half the horizon
    assert (start - first_50th).days >= labels / 2  # the customers have history before it
    assert "too short for a leak-free churn window" in note


def test_a_log_too_young_for_any_window_says_how_old_and_what_fits():
    log = _cohort(list(range(60)))
    cut = pd.Timestamp("2024-01-01") + pd.Timedelta(days=91)
    with pytest.raises(DataValidationError) as caught:
        leak_free_window(log, cut, 182, "week")
    message = str(caught.value)
    assert "the log is 13 weeks old at 2024-04-01" in message
    assert "a leak-free 26-week churn window needs 39 weeks" in message
    assert "A churn horizon of at most" in message and "--churn-horizon" in message
