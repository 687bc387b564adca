"""Applied resources other than rollouts, and the resumable state of analysis runs."""

from __future__ import annotations

from rollwise.platforms.local.store import Store


def test_apply_resource_counts_generations_of_spec_changes_only(store: Store) -> None:
    doc = {"kind": "AnalysisTemplate", "metadata": {"name": "health"}, "spec": {"metrics": []}}
    assert store.apply_resource("AnalysisTemplate", "default", "health", doc, "a: 1\n") == (1, True)
    assert store.apply_resource("AnalysisTemplate", "default", "health", doc, "a: 1\n") == (1, False)
    assert store.apply_resource("AnalysisTemplate", "default", "health", doc, "a:  1\n") == (1, False)
    changed = {**doc, "spec": {"metrics": [{"name": "x"}]}}
    assert store.apply_resource("AnalysisTemplate", "default", "health", changed, "") == (2, True)
    found = store.get_resource("AnalysisTemplate", "default", "health")
    assert found is not None and found.document == changed and found.generation == 2
    assert store.get_resource("ClusterAnalysisTemplate", "", "health") is None
    store.apply_resource("ClusterAnalysisTemplate", "", "shared", doc, "")
    assert [r.kind for r in store.list_resources()] == ["AnalysisTemplate", "ClusterAnalysisTemplate"]
    assert [r.name for r in store.list_resources("ClusterAnalysisTemplate")] == ["shared"]
    assert store.delete_resource("ClusterAnalysisTemplate", "", "shared")
    assert not store.delete_resource("ClusterAnalysisTemplate", "", "shared")


def test_run_state_is_saved_with_the_phase_and_goes_with_the_rollout(store: Store) -> None:
    store.apply_rollout("app", {}, "")
    assert store.run_state("app", "r1") is None
    store.save_run_state("app", "r1", "Running", None, {"request": {"kind": "step"}})
    store.save_run_state("app", "r1", "Failed", "too many errors", {"request": {"kind": "step"}, "n": 2})
    assert store.run_state("app", "r1") == {"request": {"kind": "step"}, "n": 2}
    [run] = store.analysis_runs("app")
    assert (run.phase, run.message) == ("Failed", "too many errors")
    store.delete_rollout("app")
    assert store.run_state("app", "r1") is None
