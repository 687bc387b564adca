"""scaleDownDelaySeconds per strategy (how long the former stable stays up after promotion) and
abortScaleDownDelaySeconds of blue-green and canary (how long an aborted revision stays up)."""

from __future__ import annotations

from typing import Any

from rollwise.engine import Command
from rollwise.engine.clock import parse
from tests.engine.harness import LOCAL, Platform, deployed, phase_is
from tests.engine.test_bluegreen import blue_green
from tests.engine.test_shadow_abtest import ab, shadow

STEPS = [{"setWeight": 50}, {"pause": {}}]


def canary(**extra: Any) -> dict[str, Any]:
    return {"canary": {"steps": STEPS, "trafficRouting": LOCAL, **extra}}


def promoted(p: Platform, *commands: Command) -> tuple[str, str]:
    """Roll out version 2 to the end; returns (former stable, new stable)."""
    old = p.status.stable_revision
    assert old is not None
    p.update(version=2)
    for command in commands:
        p.run(120, until=lambda pl: pl.status.phase == "Paused")
        p.reconcile(command)
    plan = p.run(600, until=phase_is("Healthy"))
    new = plan.status.stable_revision
    assert new is not None and new != old
    return old, new


def kept_for(p: Platform, old: str) -> float:
    """Seconds the former stable keeps its replicas after promotion, as the status records it."""
    plan = p.plan
    record = next(r for r in plan.status.history or [] if r.revision == old)
    at = parse(record.scale_down_at)
    assert at is not None
    completion = plan.status.last_completion
    assert completion is not None and completion.finished_at is not None
    finished = parse(completion.finished_at)
    assert finished is not None
    return (at - finished).total_seconds()


def test_canary_keeps_the_former_stable_for_its_scale_down_delay() -> None:
    # Given a routed canary with a 5 s scale-down delay
    p = deployed(canary(scaleDownDelaySeconds=5))
    # When it is promoted
    old, new = promoted(p, Command("promote"))
    # Then the former stable keeps every replica for 5 s (in the status and the wake-up), then goes
    assert p.plan.replicas[old] == 4 and dict(p.plan.routes.weights) == {new: 100}
    assert kept_for(p, old) == 5 and p.plan.requeue_after == 5
    p.advance(4.9)
    assert p.reconcile().replicas[old] == 4
    p.advance(0.1)
    assert p.reconcile().replicas[old] == 0


def test_canary_default_delay_is_30_seconds_and_0_scales_down_at_once() -> None:
    p = deployed(canary())
    old, _ = promoted(p, Command("promote"))
    assert kept_for(p, old) == 30
    at_once = deployed(canary(scaleDownDelaySeconds=0))
    old, _ = promoted(at_once, Command("promote"))
    assert at_once.plan.replicas[old] == 0 and at_once.plan.requeue_after is None


def test_undo_inside_a_short_canary_delay_is_fast_tracked_and_after_it_is_not() -> None:
    p = deployed(canary(scaleDownDelaySeconds=10))
    old, _ = promoted(p, Command("promote"))
    plan = p.reconcile(Command("undo"))
    assert plan.status.last_completion is not None and plan.status.last_completion.result == "fastTracked"
    assert plan.status.stable_revision == old and dict(plan.routes.weights) == {old: 100}

    late = deployed(canary(scaleDownDelaySeconds=10))
    old, new = promoted(late, Command("promote"))
    late.run(11)
    plan = late.reconcile(Command("undo"))
    assert plan.status.stable_revision == new and plan.status.current_revision == old
    assert dict(plan.routes.weights) == {new: 100}


def test_shadow_and_ab_test_use_their_own_delay() -> None:
    sh = deployed(shadow(scaleDownDelaySeconds=7))
    old, _ = promoted(sh)
    assert kept_for(sh, old) == 7 and sh.plan.replicas[old] == 4
    test = deployed(ab({"weight": 50}, scaleDownDelaySeconds=12))
    old, _ = promoted(test, Command("promote"))
    assert kept_for(test, old) == 12 and test.plan.replicas[old] == 4


def test_shadow_promotion_steps_use_the_shadow_delay() -> None:
    p = deployed(shadow(scaleDownDelaySeconds=3, promotion={"steps": [{"setWeight": 50}]}))
    old, _ = promoted(p)
    assert kept_for(p, old) == 3


def test_a_canary_without_a_router_ignores_the_delay() -> None:
    p = deployed({"canary": {"steps": STEPS, "scaleDownDelaySeconds": 120}})
    old, _ = promoted(p, Command("promote"))
    assert p.plan.replicas[old] == 0
    assert all(r.scale_down_at is None for r in p.plan.status.history or [])


def aborted_preview(**options: Any) -> tuple[Platform, str, str]:
    p = deployed(blue_green(autoPromotionEnabled=False, **options))
    blue = p.status.stable_revision
    assert blue is not None
    p.update(version=2)
    plan = p.run(120, until=phase_is("Paused"))
    green = plan.status.current_revision
    assert green is not None and plan.replicas[green] == 4
    p.reconcile(Command("abort"))
    return p, blue, green


def test_blue_green_abort_keeps_the_preview_for_abort_scale_down_delay() -> None:
    # Given a preview waiting for promotion, with abortScaleDownDelaySeconds 20
    p, blue, green = aborted_preview(abortScaleDownDelaySeconds=20)
    plan = p.plan
    # Then the abort takes the preview out of service at once but keeps its replicas for 20 s
    assert plan.status.phase == "Aborted" and dict(plan.routes.weights) == {blue: 100}
    assert plan.routes.preview is None and plan.replicas[green] == 4
    assert plan.requeue_after == 20 and "kept up until" in (plan.status.message or "")
    p.advance(19)
    assert p.reconcile().replicas[green] == 4
    p.advance(1)
    plan = p.reconcile()
    assert plan.replicas[green] == 0 and plan.status.phase == "Aborted"


def test_blue_green_abort_without_the_field_scales_down_at_once_and_0_never() -> None:
    p, _, green = aborted_preview()
    assert p.plan.replicas[green] == 0
    p, _, green = aborted_preview(abortScaleDownDelaySeconds=0)
    assert p.plan.replicas[green] == 4 and p.plan.requeue_after is None
    assert p.run(3600).replicas[green] == 4
    # And retry continues from the preview that was kept
    plan = p.reconcile(Command("retry"))
    assert plan.status.phase != "Aborted" and plan.replicas[green] == 4


def test_blue_green_rollback_after_the_switch_keeps_the_new_active_for_the_abort_delay() -> None:
    analysis = {"templates": [{"templateName": "smoke"}]}
    p = deployed(blue_green(postPromotionAnalysis=analysis, abortScaleDownDelaySeconds=15))
    blue = p.status.stable_revision
    p.update(version=2)
    plan = p.run(60, until=lambda pl: bool(pl.analysis))
    green = plan.status.current_revision
    assert green is not None
    p.finish("postPromotion", "Failed")
    plan = p.reconcile()
    assert dict(plan.routes.weights) == {blue: 100} and plan.replicas[green] == 4
    assert plan.status.last_completion is not None and plan.status.last_completion.result == "rolledBack"
    p.advance(15)
    assert p.reconcile().replicas[green] == 0


def aborted_canary(**extra: Any) -> tuple[Platform, str, str]:
    """A routed canary at its 50% pause, aborted; returns (platform, stable, canary)."""
    p = deployed(canary(**extra))
    stable = p.status.stable_revision
    p.update(version=2)
    plan = p.run(120, until=lambda pl: pl.status.phase == "Paused")
    new = plan.status.current_revision
    assert stable is not None and new is not None and plan.replicas[new] == 2
    p.reconcile(Command("abort"))
    return p, stable, new


def test_canary_abort_keeps_the_canary_out_of_traffic_for_abort_scale_down_delay() -> None:
    # Given a routed canary at 50%, with abortScaleDownDelaySeconds 30
    p, stable, new = aborted_canary(abortScaleDownDelaySeconds=30)
    plan = p.plan
    # Then the abort sends all traffic to stable at once but keeps the canary's replicas for 30 s
    assert plan.status.phase == "Aborted" and dict(plan.routes.weights) == {stable: 100}
    assert plan.replicas[new] == 2 and plan.replicas[stable] == 4
    assert plan.requeue_after == 30 and "kept up until" in (plan.status.message or "")
    p.advance(29)
    assert p.reconcile().replicas[new] == 2
    p.advance(1)
    plan = p.reconcile()
    assert plan.replicas[new] == 0 and dict(plan.routes.weights) == {stable: 100}


def test_canary_abort_without_the_field_scales_down_at_once_and_0_never() -> None:
    p, _, new = aborted_canary()
    assert p.plan.replicas[new] == 0
    p, stable, new = aborted_canary(abortScaleDownDelaySeconds=0)
    assert p.plan.replicas[new] == 2 and p.plan.requeue_after is None
    plan = p.run(3600)
    assert plan.replicas[new] == 2 and dict(plan.routes.weights) == {stable: 100}
    # And an undo ends it: back to stable, the canary goes
    p.reconcile(Command("undo"))
    assert p.run(120, until=phase_is("Healthy")).replicas.get(new, 0) == 0
