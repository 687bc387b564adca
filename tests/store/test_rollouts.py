from __future__ import annotations

import pytest

from rollwise.platforms.local.store import RolloutNotFoundError, StaleWriteError, Store

SPEC = {"replicas": 3, "process": {"command": ["app", "--version", "1"]}}


def test_apply_creates_at_generation_one(store: Store) -> None:
    assert store.apply_rollout("app", SPEC, "replicas: 3\n") == (1, True)
    rollout = store.get_rollout("app")
    assert rollout is not None
    assert (rollout.generation, rollout.version, rollout.namespace) == (1, 1, "default")
    assert rollout.spec == SPEC and rollout.spec_yaml == "replicas: 3\n" and rollout.status == {}
    assert rollout.created_at == rollout.updated_at


def test_generation_bumps_only_when_the_spec_changes(store: Store) -> None:
    store.apply_rollout("app", SPEC, "replicas: 3\n")
    # The same spec with keys in another order, as JSON text: not a change.
    reordered = '{"process": {"command": ["app", "--version", "1"]}, "replicas": 3}'
    assert store.apply_rollout("app", reordered, "replicas: 3\n") == (1, False)
    assert store.get_rollout("app").version == 1  # type: ignore[union-attr]

    # A new comment in the YAML: kept, but neither a new generation nor a spec change.
    assert store.apply_rollout("app", SPEC, "# scaled\nreplicas: 3\n") == (1, False)
    rollout = store.get_rollout("app")
    assert rollout is not None and rollout.spec_yaml.startswith("# scaled") and rollout.version == 2

    assert store.apply_rollout("app", {**SPEC, "replicas": 5}, "replicas: 5\n") == (2, True)
    assert store.apply_rollout("app", {**SPEC, "replicas": 5}, "replicas: 5\n") == (2, False)
    assert store.get_rollout("app").generation == 2  # type: ignore[union-attr]


def test_spec_must_be_an_object(store: Store) -> None:
    with pytest.raises(ValueError, match="must be a JSON object"):
        store.apply_rollout("app", "[1, 2]", "")


def test_status_write_bumps_the_version(store: Store) -> None:
    store.apply_rollout("app", SPEC, "")
    assert store.write_status("app", {"phase": "Progressing"}, expected_version=1) == 2
    rollout = store.get_rollout("app")
    assert rollout is not None and rollout.status == {"phase": "Progressing"} and rollout.generation == 1
    # The same status again is not a write: the version stays, so nobody else's write goes stale.
    assert store.write_status("app", {"phase": "Progressing"}) == 2


def test_a_stale_writer_gets_a_clear_error(store: Store) -> None:
    store.apply_rollout("app", SPEC, "")
    read = store.get_rollout("app")
    assert read is not None
    store.write_status("app", {"phase": "Paused"}, expected_version=read.version)  # someone else wins
    with pytest.raises(StaleWriteError) as caught:
        store.write_status("app", {"phase": "Healthy"}, expected_version=read.version)
    assert str(caught.value) == (
        "rollout 'app': stale write, expected version 1 but the stored version is 2; re-read the rollout and retry"
    )
    assert store.get_rollout("app").status == {"phase": "Paused"}  # type: ignore[union-attr]


def test_a_spec_change_makes_status_for_the_old_generation_stale(store: Store) -> None:
    store.apply_rollout("app", SPEC, "")
    store.apply_rollout("app", {**SPEC, "replicas": 1}, "")
    with pytest.raises(StaleWriteError, match="expected generation 1 but the stored generation is 2"):
        store.write_status("app", {"observedGeneration": 1}, expected_generation=1)
    assert store.write_status("app", {"observedGeneration": 2}, expected_generation=2) == 3


def test_status_of_a_missing_rollout(store: Store) -> None:
    with pytest.raises(RolloutNotFoundError, match="rollout 'ghost' not found"):
        store.write_status("ghost", {})
    assert store.get_rollout("ghost") is None


def test_list_by_namespace(store: Store) -> None:
    store.apply_rollout("b", SPEC, "", namespace="team")
    store.apply_rollout("a", SPEC, "")
    assert [r.name for r in store.list_rollouts()] == ["a", "b"]
    assert [r.name for r in store.list_rollouts("team")] == ["b"]


def test_delete_takes_history_along_but_not_replicas(store: Store) -> None:
    from rollwise.platforms.local.store import ReplicaRecord

    store.apply_rollout("app", SPEC, "")
    store.record_revision("app", "aaa", {"image": "v1"})
    store.add_event("app", "Normal", "Applied", "x")
    store.add_measurement("app", "run-1", "errors", phase="Successful", value="0.0")
    store.replicas.save(ReplicaRecord("app", "aaa", 0, pid=42, port=9000, started_ticks=7))
    assert store.delete_rollout("app") is True
    assert store.delete_rollout("app") is False
    assert store.revisions("app") == [] and store.events("app") == [] and store.measurements("app") == []
    assert store.analysis_runs("app") == []
    assert len(store.replicas.list()) == 1  # the supervisor still has a process to stop
