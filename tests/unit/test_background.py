"""Jobs on the worker thread: the same results as inline, the caller's limits, and a prompt stop
when the command they serve fails."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest

from clv import resources
from clv.background import Handoff, StoppedError, background
from clv.churn import train_churn_model

CUT = pd.Timestamp("1997-06-30")
END = CUT + pd.Timedelta(weeks=26)


def test_a_churn_model_trained_on_the_worker_equals_the_inline_one(sample_log):
    inline = train_churn_model(sample_log.compact, CUT, END, "week", seed=3)
    with resources.limits(1), background() as jobs:
        job = jobs.submit(
            train_churn_model, sample_log.compact, CUT, END, "week", seed=3, stop=jobs.stop
        )
        worker = job.result()
    assert worker.to_dict() == inline.to_dict()
    assert worker.booster_text == inline.booster_text


def test_jobs_run_in_order_with_their_share_of_the_callers_threads():
    seen: list[tuple[str, int]] = []
    running, release = threading.Event(), threading.Event()

    def first(name: str) -> None:
        seen.append((name, resources.threads()))
        running.set()
        release.wait(10)

    with resources.limits(4):
        with background() as jobs:
            jobs.submit(first, "first")
            jobs.submit(lambda n: seen.append((n, resources.threads())), "second")
            running.wait(10)
            assert resources.threads() == 2  # the main line has the rest while a job runs
            release.set()
        assert resources.threads() == 4  # all of them once the jobs are done
    assert seen == [("first", 2), ("second", 2)]  # finished when the block ends


def test_a_failing_command_stops_its_lightgbm_training_at_the_next_round(sample_log):
    """A real churn training on the worker, stopped while LightGBM cross-validates: the block
    re-raises the caller's error at once and the job ends with StoppedError, not a model."""
    started = threading.Event()

    def training(stop: threading.Event) -> object:
        started.set()
        return train_churn_model(sample_log.compact, CUT, END, "week", seed=3, stop=stop)

    inline = time.perf_counter()
    train_churn_model(sample_log.compact, CUT, END, "week", seed=3)
    inline = time.perf_counter() - inline
    with pytest.raises(KeyboardInterrupt), background() as jobs:
        job = jobs.submit(training, jobs.stop)
        started.wait()
        begun = time.perf_counter()
        raise KeyboardInterrupt  # Ctrl-C in the main line
    stopped_after = time.perf_counter() - begun
    with pytest.raises(StoppedError):
        job.result()
    assert stopped_after < inline  # it did not finish the training first


def test_queued_jobs_do_not_start_after_a_failure():
    ran: list[str] = []
    started = threading.Event()

    def waiting(stop: threading.Event) -> bool:
        started.set()
        return stop.wait(30)  # returns once the failure sets stop

    with pytest.raises(RuntimeError, match="main line"), background() as jobs:
        running = jobs.submit(waiting, jobs.stop)
        queued = jobs.submit(ran.append, "late")
        started.wait()
        raise RuntimeError("main line")
    assert running.result() is True
    assert queued.cancelled() and ran == []


def test_a_handoff_is_built_once_by_whoever_claims_it_first():
    """The worker waits for what the main line is building (and the other way round the main
    line goes on); a failed build reaches the waiting worker instead of leaving it waiting."""
    built, started = [], threading.Event()
    release = threading.Event()

    def build():
        built.append(threading.current_thread().name)
        started.set()
        release.wait(5)
        return {"table": 1}

    handoff = Handoff(build)
    with background() as jobs:
        main = threading.Thread(target=handoff.build_if_free, name="main-line")
        main.start()
        started.wait(5)
        waiting = jobs.submit(handoff.get)  # the worker comes while the main line builds
        assert not waiting.done()
        release.set()
        assert waiting.result(5) == {"table": 1}
        main.join(5)
    assert built == ["main-line"]

    late = Handoff(lambda: built.append("worker") or "value")
    assert late.get() == "value"
    assert late.build_if_free() is False  # already built: nothing to do here
    assert built[-1] == "worker" and built.count("worker") == 1

    def broken():
        raise ValueError("no table")

    failed = Handoff(broken)
    with pytest.raises(ValueError, match="no table"):
        failed.build_if_free()
    with pytest.raises(ValueError, match="no table"):
        failed.get()
