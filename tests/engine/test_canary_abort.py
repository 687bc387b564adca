"""Abort, retry and the hard cases around them: instant / gradual / freeze, abort-retry-promote,
inconclusive analysis, abort with nothing in progress, the progress deadline."""

from __future__ import annotations

from rollwise.engine import Command
from tests.engine.harness import LOCAL, Platform, deployed, phase_is

STEPS = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {}}]


def canary(abort: dict[str, object] | None = None, steps: list[dict[str, object]] | None = None) -> dict[str, object]:
    spec: dict[str, object] = {"steps": STEPS if steps is None else steps, "trafficRouting": LOCAL}
    if abort is not None:
        spec["abort"] = abort
    return {"canary": spec}


def at_sixty(abort: dict[str, object] | None = None) -> tuple[Platform, str, str]:
    p = deployed(canary(abort))
    stable: str = p.status.stable_revision
    p.update(version=2)
    p.run(30, until=phase_is("Paused"))
    p.reconcile(Command("promote"))
    plan = p.run(30, until=lambda pl: pl.status.current_step_index == 3)
    new: str = plan.status.current_revision
    assert dict(plan.routes.weights) == {stable: 40, new: 60}
    return p, stable, new


def test_instant_abort_puts_all_traffic_on_stable_in_the_same_plan() -> None:
    p, stable, new = at_sixty()
    plan = p.reconcile(Command("abort"))
    assert dict(plan.routes.weights) == {stable: 100}
    assert plan.replicas[new] == 0 and plan.replicas[stable] == 4
    assert plan.status.phase == "Aborted" and plan.status.aborted
    assert plan.status.last_completion is not None and plan.status.last_completion.result == "aborted"
    # It stays aborted (not Healthy: the spec's revision is not running) until retried or changed
    plan = p.run(600)
    assert plan.status.phase == "Aborted" and dict(plan.routes.weights) == {stable: 100}


def test_gradual_abort_steps_the_weight_down() -> None:
    p, stable, new = at_sixty({"mode": "gradual", "stepWeight": 20, "interval": "10s"})
    plan = p.reconcile(Command("abort"))
    assert dict(plan.routes.weights) == {stable: 60, new: 40}
    assert plan.requeue_after == 10
    seen = []
    for _ in range(3):
        p.advance(10)
        plan = p.reconcile()
        seen.append(plan.routes.weights.get(new, 0))
    assert seen == [20, 0, 0]
    assert plan.replicas[new] == 0 and plan.status.phase == "Aborted"


def test_freeze_holds_traffic_until_a_human_decides() -> None:
    p, stable, new = at_sixty({"mode": "freeze"})
    plan = p.reconcile(Command("abort"))
    assert dict(plan.routes.weights) == {stable: 40, new: 60}
    assert plan.status.phase == "Aborted"
    assert [c.reason for c in plan.status.pause_conditions or []] == ["AbortFrozen"]
    plan = p.run(600)
    assert dict(plan.routes.weights) == {stable: 40, new: 60}
    # Aborting again rolls back for real
    plan = p.reconcile(Command("abort"))
    assert dict(plan.routes.weights) == {stable: 100} and plan.replicas[new] == 0


def test_resume_continues_a_frozen_update() -> None:
    p, _, _ = at_sixty({"mode": "freeze"})
    p.reconcile(Command("abort"))
    plan = p.reconcile(Command("resume"))
    assert plan.status.phase == "Paused" and not plan.status.aborted
    assert plan.status.current_step_index == 3


def test_abort_retry_promote() -> None:
    # Given an aborted canary
    p, stable, new = at_sixty()
    p.reconcile(Command("abort"))
    # When retried, it starts again from the first step
    plan = p.reconcile(Command("retry"))
    assert not plan.status.aborted and plan.status.current_step_index == 0
    plan = p.run(30, until=phase_is("Paused"))
    assert dict(plan.routes.weights) == {stable: 80, new: 20}
    # And promoting through the steps completes it
    p.reconcile(Command("promote"))
    p.run(30, until=phase_is("Paused"))
    p.reconcile(Command("promote"))
    plan = p.run(60, until=phase_is("Healthy"))
    assert plan.status.stable_revision == new and dict(plan.routes.weights) == {new: 100}
    assert plan.status.attempt == 3  # the first revision, the update, the retry


def test_promote_and_retry_are_refused_when_they_make_no_sense() -> None:
    p, stable, _ = at_sixty()
    plan = p.reconcile(Command("retry"))
    assert plan.status.last_command is not None and not plan.status.last_command.accepted
    p.reconcile(Command("abort"))
    plan = p.reconcile(Command("promote"))
    assert not plan.status.last_command.accepted and "retry" in plan.status.last_command.message
    assert dict(plan.routes.weights) == {stable: 100}


def test_abort_with_no_update_in_progress_changes_nothing() -> None:
    p = deployed(canary())
    before = p.reconcile()
    after = p.reconcile(Command("abort"))
    assert after.replicas == before.replicas and after.routes == before.routes
    assert after.status.phase == "Healthy" and not after.status.aborted
    assert after.status.model_dump(exclude={"last_command"}) == before.status.model_dump(exclude={"last_command"})
    assert after.status.last_command is not None and not after.status.last_command.accepted
    assert "no update in progress" in after.status.last_command.message


def test_inconclusive_analysis_pauses_instead_of_aborting() -> None:
    steps = [{"setWeight": 20}, {"analysis": {"templates": [{"templateName": "latency"}]}}, {"setWeight": 50}]
    p = deployed(canary(steps=steps))
    stable = p.status.stable_revision
    p.update(version=2)
    plan = p.run(30, until=lambda pl: bool(pl.analysis))
    new = plan.status.current_revision
    first = plan.analysis[0].name
    p.finish("step", "Inconclusive")
    plan = p.reconcile()
    # Paused, not aborted; traffic stays where it was
    assert plan.status.phase == "Paused" and not plan.status.aborted
    assert [c.reason for c in plan.status.pause_conditions or []] == ["InconclusiveAnalysis"]
    assert dict(plan.routes.weights) == {stable: 80, new: 20}
    assert plan.analysis == ()
    # Resume runs the analysis again under a new name
    plan = p.reconcile(Command("resume"))
    assert [r.name for r in plan.analysis] == [first + "-r1"] and plan.status.phase == "Progressing"
    # Inconclusive again; this time a human accepts it with promote
    p.finish("step", "Inconclusive")
    p.reconcile()
    plan = p.reconcile(Command("promote"))
    assert plan.status.current_step_index is not None and plan.status.current_step_index >= 2
    plan = p.run(60, until=phase_is("Healthy"))
    assert plan.status.stable_revision == new


def test_failed_step_analysis_aborts() -> None:
    steps = [{"setWeight": 20}, {"analysis": {"templates": [{"templateName": "latency"}]}}, {"setWeight": 50}]
    p = deployed(canary(steps=steps), outcomes={"step": "Failed"})
    stable = p.status.stable_revision
    p.update(version=2)
    plan = p.run(60, until=phase_is("Aborted"))
    assert dict(plan.routes.weights) == {stable: 100}
    assert plan.status.abort is not None and plan.status.abort.reason == "AnalysisFailed"


def test_an_analysis_error_pauses_rather_than_promoting_or_aborting() -> None:
    # An error is no evidence either way (a provider down, no data): a human decides
    steps = [{"setWeight": 20}, {"analysis": {"templates": [{"templateName": "latency"}]}}, {"setWeight": 50}]
    p = deployed(canary(steps=steps), outcomes={"step": "Error"})
    stable = p.status.stable_revision
    p.update(version=2)
    plan = p.run(60, until=phase_is("Paused"))
    new = plan.status.current_revision
    assert [c.reason for c in plan.status.pause_conditions or []] == ["AnalysisError"]
    assert not plan.status.aborted and dict(plan.routes.weights) == {stable: 80, new: 20}
    # Resume runs it again; this time the provider answers
    p.outcomes["step"] = "Successful"
    plan = p.reconcile(Command("resume"))
    assert [r.name.endswith("-r1") for r in plan.analysis] == [True]
    plan = p.run(60, until=phase_is("Healthy"))
    assert plan.status.stable_revision == new


def test_a_crash_looping_canary_ends_aborted_by_the_progress_deadline() -> None:
    # Given a rollout that aborts when the deadline passes
    p = deployed(canary(), progressDeadlineSeconds=120, progressDeadlineAbort=True)
    stable = p.status.stable_revision
    # When the new revision crash-loops
    p.update(version=2)
    new = p.reconcile().status.current_revision
    p.crash(new)
    plan = p.run(119)
    assert plan.status.phase == "Progressing" and plan.requeue_after is not None
    # Then after the deadline it is aborted — not hanging — with all traffic on stable
    plan = p.run(5)
    assert plan.status.phase == "Aborted"
    assert plan.status.abort is not None and plan.status.abort.reason == "ProgressDeadlineExceeded"
    assert dict(plan.routes.weights) == {stable: 100} and plan.replicas[new] == 0


def test_progress_deadline_without_abort_marks_degraded_then_recovers() -> None:
    p = deployed(canary(), progressDeadlineSeconds=60)
    p.update(version=2)
    new = p.reconcile().status.current_revision
    p.crash(new)
    plan = p.run(90)
    assert plan.status.phase == "Degraded" and not plan.status.aborted
    progressing = next(c for c in plan.status.conditions or [] if c.type == "Progressing")
    assert progressing.status == "False" and progressing.reason == "ProgressDeadlineExceeded"
    # When the crash is fixed the rollout moves on
    p.crash(new, False)
    plan = p.run(30, until=phase_is("Paused"))
    assert plan.status.phase == "Paused" and plan.status.current_step_index == 1


def test_user_pause_holds_and_resume_continues() -> None:
    p = deployed(canary(steps=[{"setWeight": 20}, {"pause": {"duration": 10}}, {"setWeight": 40}, {"pause": {}}]))
    p.update(version=2)
    plan = p.reconcile(Command("pause"))
    assert plan.status.phase == "Paused"
    plan = p.run(120)
    assert plan.status.current_step_index == 0 and plan.status.phase == "Paused"
    plan = p.reconcile(Command("resume"))
    plan = p.run(120, until=lambda pl: pl.status.current_step_index == 3)
    assert plan.status.current_step_index == 3


def test_spec_paused_holds_the_rollout() -> None:
    p = deployed(canary())
    p.update(version=2, paused=True)
    plan = p.run(120)
    assert plan.status.phase == "Paused" and plan.status.current_step_index == 0
    assert any(c.reason == "PausedBySpec" for c in plan.status.pause_conditions or [])
    p.update(paused=False)
    plan = p.run(30, until=lambda pl: pl.status.current_step_index == 1)
    assert plan.status.current_step_index == 1
