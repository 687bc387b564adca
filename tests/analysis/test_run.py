"""The AnalysisRun state machine: timing, limits, dry runs, retention, restart from status."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from rollwise.analysis.run import ERROR_RETRY_SECONDS, AnalysisRunState
from rollwise.analysis.timestamps import format_time
from rollwise.spec.analysis import AnalysisRunStatus, Measurement, Verdict
from tests.analysis.helpers import T0, metric


def at(seconds: float) -> Any:
    return T0 + timedelta(seconds=seconds)


def result(phase: Verdict, message: str = "") -> Measurement:
    return Measurement(phase=phase, message=message or f"a {phase.lower()} measurement")


def test_single_measurement_without_interval() -> None:
    run = AnalysisRunState([metric(name="a")], started_at=T0)
    assert run.phase == "Pending"
    assert run.next_due(T0) == {"a": T0}
    run.record("a", result("Successful"), T0)
    assert run.phase == "Successful"
    assert run.next_due(at(100)) == {"a": None}
    assert run.wake_at(at(100)) is None


def test_initial_delay_interval_and_count() -> None:
    m = metric(name="a", initialDelay="30s", interval="1m", count=3)
    run = AnalysisRunState([m], started_at=T0)
    assert run.next_due(T0)["a"] == at(30)
    assert run.due(at(29)) == []
    assert [x.name for x in run.due(at(30))] == ["a"]
    run.record("a", result("Successful"), at(31))  # measuring took a second
    assert run.next_due(at(31))["a"] == at(91)  # the interval runs from the end of the measurement
    assert run.phase == "Running"
    run.record("a", result("Successful"), at(91))
    run.record("a", result("Successful"), at(151))
    assert run.phase == "Successful"
    r = run.result("a")
    assert (r.count, r.successful, r.phase) == (3, 3, "Successful")
    assert r.message == "3 measurements: 3 successful"


def test_failure_limit() -> None:
    run = AnalysisRunState([metric(name="a", interval="10s", count=5, failureLimit=1)], started_at=T0)
    run.record("a", result("Failed"), at(0))
    assert run.phase == "Running"  # one failure is within the limit
    run.record("a", result("Successful"), at(10))
    run.record("a", result("Failed", "error rate 0.07 over 0.05"), at(20))
    assert run.phase == "Failed"
    assert run.message == (
        "metric 'a' failed: 2 of 3 measurements failed (failureLimit 1); last: error rate 0.07 over 0.05"
    )
    assert run.next_due(at(100)) == {"a": None}


def test_inconclusive_limit_default_zero_pauses_at_once() -> None:
    run = AnalysisRunState([metric(name="a", interval="10s", count=5)], started_at=T0)
    run.record("a", result("Inconclusive", "no data: the query returned an empty vector"), at(0))
    assert run.phase == "Inconclusive"
    assert "empty vector" in (run.message or "")


def test_inconclusive_limit() -> None:
    run = AnalysisRunState([metric(name="a", interval="10s", count=3, inconclusiveLimit=1)], started_at=T0)
    run.record("a", result("Inconclusive"), at(0))
    run.record("a", result("Successful"), at(10))
    run.record("a", result("Successful"), at(20))
    assert run.phase == "Successful"
    assert run.result("a").message == "3 measurements: 2 successful, 1 inconclusive"


def test_consecutive_errors() -> None:
    run = AnalysisRunState([metric(name="a", interval="10s", count=3, consecutiveErrorLimit=2)], started_at=T0)
    for t in (0, 10):
        run.record("a", result("Error", "cannot reach Prometheus"), at(t))
    run.record("a", result("Successful"), at(20))  # resets the streak
    assert run.result("a").consecutive_error == 0
    for t in (30, 40):
        run.record("a", result("Error"), at(t))
    assert run.phase == "Running"
    run.record("a", result("Error", "cannot reach Prometheus"), at(50))
    assert run.phase == "Error"
    assert "3 consecutive errors (consecutiveErrorLimit 2); last: cannot reach Prometheus" in (run.message or "")


def test_errors_do_not_count_towards_count() -> None:
    run = AnalysisRunState([metric(name="a", interval="10s", count=2)], started_at=T0)
    run.record("a", result("Successful"), at(0))
    run.record("a", result("Error"), at(10))
    assert run.phase == "Running"
    run.record("a", result("Successful"), at(20))
    assert run.phase == "Successful"
    assert run.result("a").count == 3


def test_error_without_interval_is_retried_later_not_in_a_loop() -> None:
    run = AnalysisRunState([metric(name="a")], started_at=T0)
    run.record("a", result("Error"), at(0))
    assert run.next_due(at(0))["a"] == at(ERROR_RETRY_SECONDS)


def test_worst_metric_decides_and_stops_the_run() -> None:
    metrics = [
        metric(name="ok", interval="10s", count=3),
        metric(name="flaky", interval="10s", count=3, consecutiveErrorLimit=0),
        metric(name="bad", interval="10s", count=3),
    ]
    run = AnalysisRunState(metrics, started_at=T0)
    run.record("ok", result("Successful"), at(0))
    run.record("flaky", result("Error"), at(0))
    assert run.phase == "Error"
    run2 = AnalysisRunState(metrics, started_at=T0)
    run2.record("flaky", result("Error"), at(0))
    run2.record("bad", result("Failed"), at(0))  # the run already ended on the error
    assert run2.phase == "Error"
    run3 = AnalysisRunState(metrics, started_at=T0)
    run3.record("bad", result("Failed"), at(0))
    assert run3.phase == "Failed"
    assert run3.next_due(at(10)) == {"ok": None, "flaky": None, "bad": None}


def test_dry_run_metrics_are_shown_but_never_decide() -> None:
    metrics = [metric(name="real"), metric(name="trial", dryRun=True)]
    run = AnalysisRunState(metrics, started_at=T0)
    run.record("trial", result("Failed"), at(0))
    assert run.phase == "Running"
    assert run.result("trial").phase == "Failed" and run.result("trial").dry_run
    run.record("real", result("Successful"), at(0))
    assert run.phase == "Successful"
    assert run.message == "1 metric successful; dry-run metric 'trial' failed (not decisive)"


def test_only_dry_run_metrics() -> None:
    run = AnalysisRunState([metric(name="trial", dryRun=True)], started_at=T0)
    run.record("trial", result("Failed"), at(0))
    assert run.phase == "Successful"
    assert "none decisive" in (run.message or "")


def test_background_metric_runs_until_terminated() -> None:
    run = AnalysisRunState([metric(name="bg", interval="30s")], started_at=T0)
    for i in range(20):
        run.record("bg", result("Successful"), at(30 * i))
    assert run.phase == "Running"
    assert run.next_due(at(600))["bg"] == at(600)
    run.terminate("the rollout completed")
    assert run.phase == "Successful"
    assert run.message == "terminated: the rollout completed"
    assert run.result("bg").message == "terminated after 20 measurements"
    assert run.next_due(at(700)) == {"bg": None}


def test_retention_keeps_the_last_measurements_and_all_counters() -> None:
    run = AnalysisRunState([metric(name="bg", interval="1s")], started_at=T0, retention=3)
    for i in range(25):
        run.record("bg", result("Successful" if i % 5 else "Failed", f"#{i}"), at(i))
        if run.done:
            break
    r = run.result("bg")
    assert r.phase == "Failed" and r.count == 1  # failureLimit 0: the first failure ends it
    run = AnalysisRunState([metric(name="bg", interval="1s", failureLimit=100)], started_at=T0, retention=3)
    for i in range(25):
        run.record("bg", result("Successful" if i % 5 else "Failed", f"#{i}"), at(i))
    r = run.result("bg")
    assert [m.message for m in r.measurements or []] == ["#22", "#23", "#24"]
    assert (r.count, r.successful, r.failed) == (25, 20, 5)
    assert r.measurements and r.measurements[-1].finished_at == format_time(at(24))


def test_in_flight_measurement() -> None:
    run = AnalysisRunState([metric(name="job", interval="1m", count=2)], started_at=T0)
    run.begin("job", at(0))
    assert run.phase == "Running"
    assert run.next_due(at(5)) == {"job": None}  # not due again while it runs
    with pytest.raises(ValueError, match="already has a measurement in flight"):
        run.begin("job", at(1))
    run.record("job", result("Successful"), at(40))
    m = (run.result("job").measurements or [])[-1]
    assert (m.started_at, m.finished_at) == (format_time(at(0)), format_time(at(40)))
    assert run.next_due(at(40))["job"] == at(100)


def test_restart_from_status_continues_exactly() -> None:
    metrics = [metric(name="a", interval="1m", count=3, failureLimit=1), metric(name="b", initialDelay="5m")]
    run = AnalysisRunState(metrics, started_at=T0)
    run.record("a", result("Failed"), at(0))
    run.record("a", result("Successful"), at(60))
    saved = AnalysisRunStatus.model_validate(run.status().to_dict())  # through YAML/JSON form
    again = AnalysisRunState(metrics, status=saved)
    assert again.next_due(at(60)) == run.next_due(at(60)) == {"a": at(120), "b": at(300)}
    again.record("a", result("Failed"), at(120))
    assert again.phase == "Failed"
    assert again.status().started_at == format_time(T0)


def test_rejects_wrong_inputs() -> None:
    with pytest.raises(ValueError, match="unique"):
        AnalysisRunState([metric(name="a"), metric(name="a")], started_at=T0)
    run = AnalysisRunState([metric(name="a")], started_at=T0)
    with pytest.raises(ValueError, match="must be final"):
        run.record("a", Measurement(phase="Running"), T0)
    with pytest.raises(KeyError, match="no metric 'x'"):
        run.record("x", result("Successful"), T0)
