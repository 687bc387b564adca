"""Blue-green scenarios: preview sizing, pre-promotion analysis, manual and automatic promotion,
the atomic switch, post-promotion analysis with rollback, the scale-down delay."""

from __future__ import annotations

from typing import Any

from rollwise.engine import Command
from tests.engine.harness import Platform, deployed, phase_is

ANALYSIS = {"templates": [{"templateName": "smoke"}]}


def blue_green(**options: Any) -> dict[str, Any]:
    return {"blueGreen": {"activeService": "web", "previewService": "web-preview", **options}}


def switched(p: Platform) -> bool:
    return p.plan.routes.weights.get(p.status.current_revision or "", 0) == 100


def test_preview_analysis_automatic_promotion_atomic_switch_and_scale_down_delay() -> None:
    # Given a blue-green rollout with a 2-replica preview, analysis both sides of the switch,
    # automatic promotion 30 s after the preview is ready and a 60 s scale-down delay
    p = deployed(
        blue_green(
            previewReplicaCount=2,
            autoPromotionSeconds=30,
            scaleDownDelaySeconds=60,
            prePromotionAnalysis=ANALYSIS,
            postPromotionAnalysis=ANALYSIS,
        ),
        ready_after=5,
    )
    blue = p.status.stable_revision
    # When a new revision arrives
    p.update(version=2)
    plan = p.reconcile()
    green = plan.status.current_revision
    # Then the preview is scaled to 2 while active keeps all traffic
    assert plan.replicas == {blue: 4, green: 2}
    assert dict(plan.routes.weights) == {blue: 100} and plan.routes.preview is None
    p.advance(5)
    plan = p.reconcile()
    # Once the preview is ready, the preview service points at it and pre-promotion runs
    assert plan.routes.preview == green and [r.kind for r in plan.analysis] == ["prePromotion"]
    # When pre-promotion analysis passes, auto-promotion waits out its 30 s
    p.finish("prePromotion", "Successful")
    plan = p.reconcile()
    assert dict(plan.routes.weights) == {blue: 100} and plan.requeue_after == 30
    p.advance(30)
    plan = p.reconcile()
    # The preview scales to full size first; active switches only when all 4 are ready
    assert plan.replicas[green] == 4 and dict(plan.routes.weights) == {blue: 100}
    p.advance(5)
    plan = p.reconcile()
    assert dict(plan.routes.weights) == {green: 100}
    assert plan.replicas == {blue: 4, green: 4}
    # Post-promotion analysis runs with the old active kept up for rollback
    assert [r.kind for r in plan.analysis] == ["postPromotion"] and plan.status.stable_revision == blue
    p.finish("postPromotion", "Successful")
    plan = p.reconcile()
    assert plan.status.phase == "Healthy" and plan.status.stable_revision == green
    # The old active stays up for scaleDownDelaySeconds, then goes
    assert plan.replicas[blue] == 4 and plan.requeue_after == 60
    p.advance(60)
    assert p.reconcile().replicas[blue] == 0


def test_manual_promotion_waits_for_promote() -> None:
    p = deployed(blue_green(autoPromotionEnabled=False))
    blue = p.status.stable_revision
    p.update(version=2)
    plan = p.run(600)
    assert plan.status.phase == "Paused" and dict(plan.routes.weights) == {blue: 100}
    assert [c.reason for c in plan.status.pause_conditions or []] == ["BlueGreenPause"]
    plan = p.reconcile(Command("promote"))
    green = plan.status.current_revision
    assert dict(plan.routes.weights) == {green: 100}
    plan = p.run(10, until=phase_is("Healthy"))
    assert plan.status.stable_revision == green


def test_promote_before_the_preview_is_ready_still_waits_for_every_replica() -> None:
    p = deployed(blue_green(autoPromotionEnabled=False), ready_after=10)
    blue = p.status.stable_revision
    p.update(version=2)
    plan = p.reconcile(Command("promote"))
    green = plan.status.current_revision
    assert dict(plan.routes.weights) == {blue: 100} and plan.replicas[green] == 4
    p.advance(10)
    plan = p.reconcile()
    assert dict(plan.routes.weights) == {green: 100}


def test_pre_promotion_failure_aborts_without_switching() -> None:
    p = deployed(blue_green(prePromotionAnalysis=ANALYSIS), outcomes={"prePromotion": "Failed"})
    blue = p.status.stable_revision
    p.update(version=2)
    plan = p.run(120, until=phase_is("Aborted"))
    green = plan.status.current_revision
    assert all(pl.routes.weights.get(green, 0) == 0 for pl in p.plans)
    assert dict(plan.routes.weights) == {blue: 100} and plan.replicas[green] == 0
    assert plan.status.last_completion is not None and plan.status.last_completion.result == "aborted"


def test_post_promotion_failure_rolls_back_to_the_previous_active() -> None:
    p = deployed(blue_green(postPromotionAnalysis=ANALYSIS))
    blue = p.status.stable_revision
    p.update(version=2)
    plan = p.run(60, until=lambda pl: bool(pl.analysis))
    green = plan.status.current_revision
    assert dict(plan.routes.weights) == {green: 100} and plan.replicas[blue] == 4
    p.finish("postPromotion", "Failed")
    plan = p.reconcile()
    assert dict(plan.routes.weights) == {blue: 100} and plan.replicas[green] == 0
    assert plan.status.phase == "Aborted" and plan.status.stable_revision == blue
    assert plan.status.last_completion is not None and plan.status.last_completion.result == "rolledBack"
    assert plan.status.blue_green is not None and plan.status.blue_green.active_revision == blue


def test_inconclusive_pre_promotion_pauses() -> None:
    p = deployed(blue_green(prePromotionAnalysis=ANALYSIS), outcomes={"prePromotion": "Inconclusive"})
    blue = p.status.stable_revision
    p.update(version=2)
    plan = p.run(60, until=phase_is("Paused"))
    assert [c.reason for c in plan.status.pause_conditions or []] == ["InconclusiveAnalysis"]
    assert dict(plan.routes.weights) == {blue: 100} and not plan.status.aborted
    plan = p.reconcile(Command("promote"))
    assert dict(plan.routes.weights) == {plan.status.current_revision: 100}


def test_undo_within_the_scale_down_window_is_fast_tracked() -> None:
    # Given green just promoted, blue still up inside its scale-down delay
    p = deployed(blue_green(scaleDownDelaySeconds=120))
    blue = p.status.stable_revision
    p.update(version=2)
    plan = p.run(60, until=lambda pl: pl.status.stable_revision != blue)
    green = plan.status.stable_revision
    assert plan.replicas[blue] == 4
    # When the user undoes
    plan = p.reconcile(Command("undo"))
    # Then blue takes all traffic in this very plan — no preview, no analysis, no wait
    assert dict(plan.routes.weights) == {blue: 100}
    assert plan.status.stable_revision == blue and plan.status.phase == "Healthy"
    assert plan.status.last_completion is not None and plan.status.last_completion.result == "fastTracked"
    assert plan.replicas[green] == 0
    assert plan.status.undo is not None and plan.status.undo.revision == blue
    # And the undo holds although the spec still describes green
    assert p.run(300).status.stable_revision == blue


def test_undo_after_the_window_goes_through_the_strategy() -> None:
    p = deployed(blue_green(scaleDownDelaySeconds=10, autoPromotionEnabled=False))
    blue = p.status.stable_revision
    p.update(version=2)
    p.run(60, until=phase_is("Paused"))
    p.reconcile(Command("promote"))
    p.run(60)
    assert p.plan.replicas[blue] == 0
    plan = p.reconcile(Command("undo"))
    green = plan.status.stable_revision
    # blue is a preview again and waits for promotion like any new revision
    assert plan.status.current_revision == blue and dict(plan.routes.weights) == {green: 100}
    plan = p.run(60)
    assert plan.status.phase == "Paused" and plan.routes.preview == blue
