"""Events, analysis measurements, flag history and replica records, with their retention bounds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from rollwise.platforms.local.store import ReplicaRecord, Retention, RolloutNotFoundError, Store
from tests.store.conftest import FakeClock

SMALL = Retention(events_per_rollout=5, runs_per_rollout=2, measurements_per_metric=3, flag_changes_per_flagset=4)


@pytest.fixture
def small(state_dir: Path) -> Store:
    store = Store.open(state_dir, retention=SMALL, clock=FakeClock())
    store.apply_rollout("app", {}, "")
    store.apply_rollout("other", {}, "")
    return store


def test_events_keep_the_newest_per_rollout(small: Store) -> None:
    for i in range(12):
        small.add_event("app", "Normal", "Step", f"step {i}")
    small.add_event("other", "Warning", "Probe", "not ready")
    assert [e.message for e in small.events("app")] == [f"step {i}" for i in range(7, 12)]
    assert [e.message for e in small.events("app", limit=2)] == ["step 10", "step 11"]
    assert [(e.type, e.reason) for e in small.events("other")] == [("Warning", "Probe")]


def test_default_event_retention_is_a_thousand(store: Store) -> None:
    store.apply_rollout("app", {}, "")
    with store.transaction():
        for i in range(1005):
            store.add_event("app", "Normal", "Tick", str(i))
    kept = store.events("app", limit=None)
    assert len(kept) == 1000 and kept[0].message == "5"


def test_watchers_page_after_the_last_id(small: Store) -> None:
    first = [small.add_event("app", "Normal", "Step", str(i)) for i in range(3)]
    assert [e.message for e in small.events("app", limit=2, after=first[0].id)] == ["1", "2"]
    assert small.events("app", after=first[-1].id) == []


def test_event_fields_and_validation(small: Store) -> None:
    at = datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    event = small.add_event("app", "Warning", "AnalysisFailed", "error rate 31%", ts=at)
    assert small.events("app") == [event]
    assert event.ts == at
    with pytest.raises(ValueError, match="event type"):
        small.add_event("app", "Info", "X", "y")  # type: ignore[arg-type]
    with pytest.raises(RolloutNotFoundError):
        small.add_event("ghost", "Normal", "X", "y")


def test_measurements_keep_the_newest_per_metric_of_a_run(small: Store) -> None:
    for i in range(5):
        small.add_measurement("app", "run-1", "errors", phase="Successful", value=str(i))
    small.add_measurement("app", "run-1", "latency", phase="Failed", value="0.9", message="p99 above 0.5")
    assert [m.value for m in small.measurements("app", run="run-1", metric="errors")] == ["2", "3", "4"]
    latency = small.measurements("app", metric="latency")
    assert [(m.run, m.phase, m.message) for m in latency] == [("run-1", "Failed", "p99 above 0.5")]
    assert [m.value for m in small.measurements("app", limit=2)] == ["4", "0.9"]


def test_runs_keep_the_newest_per_rollout(small: Store) -> None:
    small.add_measurement("app", "run-1", "errors", phase="Successful")
    small.set_analysis_run("app", "run-1", "Successful", "all metrics passed")
    small.add_measurement("app", "run-2", "errors", phase="Failed")
    small.add_measurement("app", "run-3", "errors", phase="Successful")
    runs = small.analysis_runs("app")
    assert [(r.name, r.phase) for r in runs] == [("run-2", "Running"), ("run-3", "Running")]
    assert [m.run for m in small.measurements("app")] == ["run-2", "run-3"]  # run-1's went with it


def test_flag_history(small: Store) -> None:
    small.record_flag_change("demo", "banner", None, {"state": "ENABLED"}, "rollwise flags set banner on")
    small.record_flag_change("demo", "banner", {"state": "ENABLED"}, None, "rollwise flags delete banner")
    small.record_flag_change("shop", "checkout", {"variant": "a"}, {"variant": "b"}, "rollwise flags set checkout b")
    banner = small.flag_history("demo", "banner")
    assert [(c.old, c.new) for c in banner] == [(None, {"state": "ENABLED"}), ({"state": "ENABLED"}, None)]
    assert [c.flagset for c in small.flag_history()] == ["demo", "demo", "shop"]
    for i in range(6):
        small.record_flag_change("shop", "checkout", i, i + 1, "set")
    shop = small.flag_history("shop")
    assert [c.new for c in shop] == [3, 4, 5, 6]  # bounded per flag set
    assert len(small.flag_history("demo")) == 2


def test_replica_records(small: Store) -> None:
    table = small.replicas
    one = ReplicaRecord("app", "aaa", 0, pid=100, port=9001, started_ticks=555)
    two = ReplicaRecord("app", "aaa", 1, pid=101, port=9002, started_ticks=556, extra={"template": {"command": ["x"]}})
    table.save(two)
    table.save(one)
    assert table.list() == [one, two]
    restarted = ReplicaRecord("app", "aaa", 0, pid=200, port=9001, started_ticks=900, restarts=1)
    table.save(restarted)
    assert table.list() == [restarted, two]
    table.delete("app", "aaa", 1)
    table.delete("app", "aaa", 1)  # deleting what is gone is not an error
    assert table.list() == [restarted]
