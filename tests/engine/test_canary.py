"""Canary scenarios: steps in order, replicas sized to traffic, header and mirror routes,
background analysis, promote and promote --full, a new revision mid-rollout."""

from __future__ import annotations

from rollwise.engine import Command
from tests.engine.harness import LOCAL, deployed, phase_is

STEPS = [
    {"setWeight": 20},
    {"pause": {"duration": "1m"}},
    {"setWeight": 50},
    {"pause": {}},
    {"analysis": {"templates": [{"templateName": "success-rate"}]}},
    {"setWeight": 80},
]


def canary(steps: list[dict[str, object]] | None = None, **extra: object) -> dict[str, object]:
    return {"canary": {"steps": STEPS if steps is None else steps, "trafficRouting": LOCAL, **extra}}


def test_steps_run_in_order_with_replicas_sized_to_traffic() -> None:
    # Given a stable canary rollout of 5 replicas
    p = deployed(canary(), replicas=5, outcomes={"step": "Successful"})
    stable = p.status.stable_revision
    # When a new revision is rolled out
    p.update(version=2)
    plan = p.run(30, until=phase_is("Paused"))
    new = plan.status.current_revision
    # Then the first step routes 20% once ceil(5*20/100) = 1 canary replica is ready, and pauses
    assert plan.replicas[new] == 1 and plan.replicas[stable] == 5
    assert dict(plan.routes.weights) == {stable: 80, new: 20}
    assert plan.status.current_step_index == 1
    assert plan.requeue_after is not None and 0 < plan.requeue_after <= 60
    # When the one-minute pause has passed, setWeight 50 needs ceil(2.5) = 3 replicas
    plan = p.run(120, until=lambda pl: pl.status.current_step_index == 3)
    assert plan.replicas[new] == 3 and dict(plan.routes.weights) == {stable: 50, new: 50}
    assert plan.status.phase == "Paused"
    assert [c.reason for c in plan.status.pause_conditions or []] == ["CanaryPauseStep"]
    # And the pause without duration waits for a human however long it takes
    plan = p.run(3600)
    assert plan.status.current_step_index == 3 and plan.requeue_after is None
    # When promoted, the analysis step runs; its success leads to 80% and then promotion
    plan = p.reconcile(Command("promote"))
    assert [r.kind for r in plan.analysis] == ["step"] and plan.analysis[0].step == 4
    assert plan.start_runs == (plan.analysis[0].name,)
    plan = p.run(120, until=phase_is("Healthy"))
    assert plan.status.stable_revision == new and dict(plan.routes.weights) == {new: 100}
    assert plan.status.last_completion is not None and plan.status.last_completion.result == "promoted"
    # And the former stable revision stays up for the scale-down delay, then goes
    assert plan.replicas[stable] == 5
    plan = p.run(60)
    assert plan.replicas[stable] == 0


def test_weight_waits_for_the_canary_replicas_it_needs() -> None:
    p = deployed(canary([{"setWeight": 50}, {"pause": {}}]), ready_after=10)
    stable = p.status.stable_revision
    p.update(version=2)
    plan = p.reconcile()
    new = plan.status.current_revision
    # The canary is asked for 2 replicas but has none ready: no weight yet
    assert plan.replicas[new] == 2 and dict(plan.routes.weights) == {stable: 100}
    assert plan.status.current_step_index == 0 and "waiting for canary replicas" in (plan.status.message or "")
    p.advance(10)
    plan = p.reconcile()
    assert dict(plan.routes.weights) == {stable: 50, new: 50} and plan.status.current_step_index == 1


def test_set_canary_scale_header_and_mirror_routes() -> None:
    header = {"headers": [{"name": "x-canary", "exact": "yes"}]}
    steps = [
        {"setCanaryScale": {"replicas": 2}},
        {"setHeaderRoute": {"name": "testers", "match": [header]}},
        {"setMirrorRoute": {"name": "copy", "percent": 30}},
        {"pause": {}},
        {"setHeaderRoute": {"name": "testers"}},
        {"setMirrorRoute": {"name": "copy"}},
        {"setCanaryScale": {"matchTrafficWeight": True}},
        {"setWeight": 25},
        {"pause": {}},
    ]
    p = deployed(canary(steps), replicas=8)
    stable = p.status.stable_revision
    p.update(version=2)
    plan = p.run(60, until=phase_is("Paused"))
    new = plan.status.current_revision
    # Warmed up to 2 replicas with no weight; testers by header and a 30% copy reach it
    assert plan.replicas[new] == 2 and dict(plan.routes.weights) == {stable: 100}
    assert [(m.name, m.revision) for m in plan.routes.matches] == [("testers", new)]
    assert plan.routes.matches[0].matches[0].headers[0].exact == "yes"  # type: ignore[index]
    assert [(m.name, m.revision, m.percent) for m in plan.routes.mirrors] == [("copy", new, 30)]
    # After promote: routes removed, scale follows weight again: ceil(8*25/100) = 2
    p.reconcile(Command("promote"))
    plan = p.run(60, until=lambda pl: pl.status.current_step_index == 8)
    assert plan.routes.matches == () and plan.routes.mirrors == ()
    assert plan.replicas[new] == 2 and dict(plan.routes.weights) == {stable: 75, new: 25}


def test_background_analysis_starts_at_its_step_and_aborts_on_failure() -> None:
    steps = [{"setWeight": 10}, {"pause": {"duration": 30}}, {"setWeight": 40}, {"pause": {}}]
    bg = {"templates": [{"templateName": "errors"}], "startingStep": 2}
    p = deployed(canary(steps, analysis=bg))
    stable = p.status.stable_revision
    p.update(version=2)
    plan = p.run(20, until=lambda pl: pl.status.current_step_index == 1)
    assert plan.analysis == ()
    plan = p.run(60, until=lambda pl: pl.status.current_step_index == 3)
    assert [r.kind for r in plan.analysis] == ["background"]
    run = plan.analysis[0]
    assert run.revision == plan.status.current_revision and run.stable_revision == stable
    assert run.templates == (("errors", False),)
    # When the background run fails, the rollout aborts: 100% stable in the same plan
    p.finish("background", "Failed")
    plan = p.reconcile()
    assert plan.status.phase == "Aborted" and plan.status.aborted
    assert dict(plan.routes.weights) == {stable: 100}
    assert plan.status.abort is not None and plan.status.abort.reason == "AnalysisFailed"


def test_background_analysis_success_is_remembered_not_restarted() -> None:
    steps = [{"setWeight": 10}, {"pause": {}}]
    p = deployed(canary(steps, analysis={"templates": [{"templateName": "errors"}]}))
    p.update(version=2)
    plan = p.run(20, until=phase_is("Paused"))
    name = plan.analysis[0].name
    p.finish("background", "Successful")
    plan = p.reconcile()
    assert plan.analysis == () and plan.stop_runs == ()
    records = {r.name: r.verdict for r in plan.status.analysis_runs or []}
    assert records == {name: "Successful"}
    # The platform may garbage-collect finished runs: the status remembers the verdict
    p.verdicts.clear()
    p.runs.clear()
    assert p.reconcile().analysis == ()


def test_promote_full_skips_remaining_steps_and_analysis() -> None:
    p = deployed(canary(), outcomes={})
    p.update(version=2)
    p.run(20, until=phase_is("Paused"))
    plan = p.reconcile(Command("promoteFull"))
    new = plan.status.current_revision
    assert plan.replicas[new] == 4 and plan.analysis == ()
    plan = p.run(30, until=phase_is("Healthy"))
    assert plan.status.stable_revision == new


def test_a_newer_revision_mid_rollout_starts_over_and_scales_the_intermediate_down() -> None:
    # Given a canary halfway through its steps
    p = deployed(canary(), outcomes={"step": "Successful"})
    stable = p.status.stable_revision
    p.update(version=2)
    plan = p.run(200, until=lambda pl: pl.status.current_step_index == 3)
    middle = plan.status.current_revision
    assert dict(plan.routes.weights) == {stable: 50, middle: 50}
    # When the spec changes again (a good-to-bad-to-newer update)
    p.update(version=3)
    plan = p.reconcile()
    newest = plan.status.current_revision
    # Then the intermediate revision loses its traffic and replicas at once, and the newest
    # starts from the first step
    assert newest not in (stable, middle)
    assert plan.replicas[middle] == 0 and middle not in plan.routes.weights
    assert dict(plan.routes.weights) == {stable: 100}
    assert plan.status.current_step_index == 0 and plan.status.stable_revision == stable
    plan = p.run(60, until=lambda pl: pl.status.current_step_index == 1)
    assert dict(plan.routes.weights) == {stable: 80, newest: 20}
    # And going back to the stable spec mid-rollout ends the update at once
    p.update(version=1)
    plan = p.reconcile()
    assert plan.status.phase == "Healthy" and dict(plan.routes.weights) == {stable: 100}
    assert plan.status.last_completion is not None and plan.status.last_completion.result == "rolledBack"


def test_weight_never_routes_to_a_canary_without_ready_replicas() -> None:
    p = deployed(canary([{"setWeight": 50}, {"pause": {}}]))
    stable = p.status.stable_revision
    p.update(version=2)
    plan = p.run(30, until=phase_is("Paused"))
    new = plan.status.current_revision
    assert dict(plan.routes.weights) == {stable: 50, new: 50}
    # When every canary replica crashes
    p.crash(new)
    plan = p.reconcile()
    # Then its weight goes to stable and the status says so
    assert dict(plan.routes.weights) == {stable: 100}
    assert "no ready replica" in (plan.status.message or "")
    # And once it recovers the weight comes back (only when all its replicas are available again)
    p.crash(new, False)
    plan = p.run(30, until=lambda pl: pl.routes.weights.get(new) == 50)
    assert dict(plan.routes.weights) == {stable: 50, new: 50}


def test_without_a_router_replicas_set_the_weights() -> None:
    steps = [{"setWeight": 25}, {"pause": {}}]
    p = deployed({"canary": {"steps": steps, "maxSurge": 1, "maxUnavailable": 0}})
    stable = p.status.stable_revision
    p.update(version=2)
    plan = p.run(30, until=phase_is("Paused"))
    new = plan.status.current_revision
    # 1 of 4 replicas is the canary: traffic follows ready replicas (once the platform has
    # taken the fourth stable replica out)
    assert plan.replicas == {stable: 3, new: 1}
    plan = p.reconcile()
    assert dict(plan.routes.weights) == {stable: 75, new: 25}
    p.reconcile(Command("promote"))
    plan = p.run(60, until=phase_is("Healthy"))
    assert plan.replicas == {stable: 0, new: 4} and dict(plan.routes.weights) == {new: 100}


def test_a_step_the_router_cannot_carry_out_is_an_error_not_a_no_op() -> None:
    header = {"headers": [{"name": "x", "exact": "1"}]}
    steps = [{"setWeight": 10}, {"setHeaderRoute": {"name": "h", "match": [header]}}, {"pause": {}}]
    p = deployed({"canary": {"steps": steps}})
    p.update(version=2)
    plan = p.run(60)
    assert plan.status.phase == "Degraded" and plan.status.current_step_index == 1
    assert "needs trafficRouting" in (plan.status.message or "")
    assert any(c.type == "InvalidSpec" and c.status == "True" for c in plan.status.conditions or [])


def test_first_revision_skips_the_steps() -> None:
    p = deployed(canary())
    assert p.status.current_step_index is None
    assert p.status.last_completion is not None and p.status.last_completion.result == "promoted"


def test_a_hold_from_the_platform_pauses_as_router_failed_not_as_a_user() -> None:
    # Given a canary waiting out its one-minute pause at 20%
    p = deployed(canary(), replicas=5, outcomes={"step": "Successful"})
    stable = p.status.stable_revision
    p.update(version=2)
    p.run(30, until=phase_is("Paused"))
    before = p.plan.status.last_command
    # When the platform holds it (its router could not put the routes in force)
    plan = p.reconcile(Command("hold"))
    new = plan.status.current_revision
    # Then it is paused for that reason, the user's last command is untouched, and it says what to do
    assert plan.status.phase == "Paused" and plan.status.last_command == before
    assert "RouterFailed" in [c.reason for c in plan.status.pause_conditions or []]
    assert "the router could not put the routes in force; fix it, then resume" in (plan.status.message or "")
    # And nothing advances while held, however long
    plan = p.run(600)
    assert plan.status.current_step_index == 1 and dict(plan.routes.weights) == {stable: 80, new: 20}
    # When a user resumes, it goes on from there
    plan = p.reconcile(Command("resume"))
    assert plan.status.last_command is not None and "the routes are tried again" in plan.status.last_command.message
    plan = p.run(120, until=lambda pl: pl.status.current_step_index == 3)
    assert dict(plan.routes.weights) == {stable: 50, new: 50}
