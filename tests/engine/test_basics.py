"""The engine's contract: pure, deterministic, explicit time; analysis requests with resolved
arguments; canary replicas sized to mirrored and matched traffic."""

from __future__ import annotations

from datetime import datetime

import pytest

from rollwise.engine import Command, Observed, RevisionObserved, reconcile
from tests.engine.harness import LOCAL, START, deployed, phase_is, rollout


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        reconcile(rollout({"recreate": {}}), Observed(), datetime(2030, 1, 1))


def test_inputs_are_not_changed_and_the_same_inputs_give_the_same_plan() -> None:
    ro = rollout({"canary": {"steps": [{"setWeight": 10}], "trafficRouting": LOCAL}})
    observed = Observed(revisions={"abc": RevisionObserved(desired=4, ready=4, available=4)})
    before = ro.model_dump()
    first = reconcile(ro, observed, START, {}, ())
    second = reconcile(ro, observed, START, {}, ())
    assert first == second and ro.model_dump() == before
    assert first.status.update_started_at == "2030-01-01T00:00:00.000000Z"


def test_analysis_requests_carry_templates_step_and_resolved_arguments() -> None:
    analysis = {
        "templates": [{"templateName": "success-rate"}, {"templateName": "shared", "clusterScope": True}],
        "args": [
            {"name": "service", "value": "web"},
            {"name": "rollout", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "canary", "valueFrom": {"fieldRef": {"fieldPath": "status.canaryRevision"}}},
            {"name": "stable", "valueFrom": {"fieldRef": {"fieldPath": "status.stableRevision"}}},
            {"name": "replicas", "valueFrom": {"fieldRef": {"fieldPath": "spec.replicas"}}},
            {"name": "first", "valueFrom": {"fieldRef": {"fieldPath": "spec.process.command[0]"}}},
            {"name": "missing", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}},
        ],
    }
    p = deployed({"canary": {"steps": [{"setWeight": 10}, {"analysis": analysis}], "trafficRouting": LOCAL}})
    stable = p.status.stable_revision
    p.update(version=2)
    plan = p.run(30, until=lambda pl: bool(pl.analysis))
    (run,) = plan.analysis
    assert run.kind == "step" and run.step == 1
    assert run.templates == (("success-rate", False), ("shared", True))
    assert dict(run.args) == {
        "service": "web",
        "rollout": "web",
        "canary": plan.status.current_revision,
        "stable": stable,
        "replicas": "4",
        "first": "app",
        "missing": None,
    }
    assert run.name == f"web-{plan.status.current_revision}-{plan.status.attempt}-step1"
    assert plan.start_runs == (run.name,)
    # Once the platform reports it running, it is no longer to be started
    assert p.reconcile().start_runs == ()


def test_a_promoted_step_stops_its_running_analysis() -> None:
    analysis = {"templates": [{"templateName": "slow"}]}
    p = deployed({"canary": {"steps": [{"analysis": analysis}, {"pause": {}}], "trafficRouting": LOCAL}})
    p.update(version=2)
    plan = p.reconcile()
    name = plan.analysis[0].name
    p.reconcile()
    plan = p.reconcile(Command("promote"))
    assert plan.analysis == () and plan.stop_runs == (name,)


def test_mirrored_traffic_gets_canary_replicas_before_the_pause_starts() -> None:
    steps = [{"setMirrorRoute": {"name": "copy", "percent": 50}}, {"pause": {"duration": 60}}]
    p = deployed({"canary": {"steps": steps, "trafficRouting": LOCAL}}, ready_after=10)
    p.update(version=2)
    plan = p.reconcile()
    new = plan.status.current_revision
    assert plan.replicas[new] == 2 and plan.status.current_step_index == 0
    p.advance(10)
    plan = p.reconcile()
    assert plan.status.current_step_index == 1 and [m.revision for m in plan.routes.mirrors] == [new]
    assert plan.requeue_after == 60


def test_plan_lists_the_revision_to_create_and_what_to_keep() -> None:
    p = deployed({"rollingUpdate": {}}, replicas=2)
    p.update(version=2)
    plan = p.reconcile()
    assert plan.revision == plan.status.current_revision == plan.status.spec_revision
    assert set(plan.retained_revisions) == {plan.status.stable_revision, plan.revision}
    assert plan.status.phase == "Progressing"
    p.run(60, until=phase_is("Healthy"))


def test_reconcile_takes_its_inputs_by_name() -> None:
    ro = rollout({"rollingUpdate": {}}, replicas=1)
    plan = reconcile(rollout=ro, observed=Observed(), now=START, verdicts={}, commands=[Command("pause")])
    assert plan.status.phase == "Paused" and plan.status.last_command is not None
    assert plan.status.last_command.command == "pause" and plan.status.last_command.accepted
