"""Shadow and A/B test scenarios."""

from __future__ import annotations

from typing import Any

from rollwise.engine import Command
from tests.engine.harness import LOCAL, deployed, phase_is

ANALYSIS = {"templates": [{"templateName": "diff-rate"}]}


def shadow(**options: Any) -> dict[str, Any]:
    return {"shadow": {"mirrorPercent": 50, "duration": "5m", "trafficRouting": LOCAL, **options}}


def test_shadow_mirrors_without_serving_then_switches_after_duration_and_analysis() -> None:
    p = deployed(shadow(analysis=ANALYSIS))
    stable = p.status.stable_revision
    p.update(version=2)
    plan = p.run(20, until=lambda pl: bool(pl.routes.mirrors))
    new = plan.status.current_revision
    # The new revision gets a 50% copy of traffic, sized to it, and serves nobody
    assert plan.replicas == {stable: 4, new: 2}
    assert [(m.revision, m.percent) for m in plan.routes.mirrors] == [(new, 50)]
    assert dict(plan.routes.weights) == {stable: 100} and plan.routes.matches == ()
    assert [r.kind for r in plan.analysis] == ["shadow"]
    # The analysis passing early is not enough: the shadow phase lasts its 5 minutes
    p.finish("shadow", "Successful")
    plan = p.run(290)
    assert dict(plan.routes.weights) == {stable: 100} and plan.status.stage == "mirroring"
    # Then an instant switch: full size first, all traffic once every replica is ready
    plan = p.run(60, until=phase_is("Healthy"))
    assert dict(plan.routes.weights) == {new: 100} and plan.routes.mirrors == ()
    assert all(pl.routes.weights.get(new, 0) in (0, 100) for pl in p.plans), "an instant switch never splits traffic"
    assert all(pl.routes.weights.get(new, 0) == 0 for pl in p.plans if pl.status.stage == "mirroring")


def test_shadow_promotion_steps_run_as_a_canary() -> None:
    p = deployed(shadow(promotion={"steps": [{"setWeight": 25}, {"pause": {}}]}))
    stable = p.status.stable_revision
    p.update(version=2)
    plan = p.run(400, until=phase_is("Paused"))
    new = plan.status.current_revision
    assert plan.status.stage == "promotionSteps" and plan.routes.mirrors == ()
    assert dict(plan.routes.weights) == {stable: 75, new: 25}
    p.reconcile(Command("promote"))
    plan = p.run(60, until=phase_is("Healthy"))
    assert plan.status.stable_revision == new


def test_shadow_compares_replies_when_asked_and_a_failed_comparison_aborts() -> None:
    compare = {"body": True, "ignoreBodyPaths": ["$.timestamp"], "maxMismatchRate": 0.02}
    p = deployed(shadow(compare=compare), outcomes={"shadowCompare": "Failed"})
    stable = p.status.stable_revision
    p.update(version=2)
    plan = p.run(20, until=lambda pl: bool(pl.analysis))
    (run,) = plan.analysis
    assert run.kind == "shadowCompare" and run.compare is not None and run.compare.max_mismatch_rate == 0.02
    plan = p.run(120, until=phase_is("Aborted"))
    assert plan.routes.mirrors == () and dict(plan.routes.weights) == {stable: 100}


def test_shadow_analysis_failure_aborts_and_stops_mirroring() -> None:
    p = deployed(shadow(analysis=ANALYSIS), outcomes={"shadow": "Failed"})
    stable = p.status.stable_revision
    p.update(version=2)
    plan = p.run(120, until=phase_is("Aborted"))
    assert plan.routes.mirrors == () and dict(plan.routes.weights) == {stable: 100}
    assert plan.replicas[plan.status.current_revision or ""] == 0


def test_shadow_inconclusive_analysis_pauses() -> None:
    p = deployed(shadow(analysis=ANALYSIS), outcomes={"shadow": "Inconclusive"})
    p.update(version=2)
    plan = p.run(600, until=phase_is("Paused", "Aborted"))
    assert plan.status.phase == "Paused" and bool(plan.routes.mirrors)


def ab(candidate: dict[str, Any], **options: Any) -> dict[str, Any]:
    return {
        "abTest": {
            "variants": [{"name": "a", "role": "control"}, {"name": "b", "role": "candidate", **candidate}],
            "duration": "1h",
            "trafficRouting": LOCAL,
            **options,
        }
    }


BETA = [{"cookies": [{"name": "beta", "exact": "1"}]}]
WINNER = {"metric": "success-rate", "better": "higher"}


def test_ab_test_routes_variants_then_promotes_the_winner() -> None:
    p = deployed(ab({"match": BETA, "weight": 10}, analysis=ANALYSIS, winnerBy=WINNER))
    control = p.status.stable_revision
    p.update(version=2)
    plan = p.run(30, until=lambda pl: pl.status.stage == "experiment")
    candidate = plan.status.current_revision
    # Beta users by cookie, plus a sticky 10% of everyone else, go to the candidate
    assert [(m.name, m.revision) for m in plan.routes.matches] == [("variant-b", candidate)]
    assert dict(plan.routes.weights) == {control: 90, candidate: 10}
    assert plan.routes.sticky_by is not None and plan.routes.sticky_by.cookie == "rollwise-variant"
    # The analysis runs as guardrails; passing them is not winning
    assert [r.kind for r in plan.analysis] == ["abTest"]
    p.finish("abTest", "Successful")
    plan = p.run(3500)
    assert plan.status.stage == "experiment" and plan.analysis == ()
    # When the hour is up, the verdict on winnerBy is asked for
    plan = p.run(200, until=lambda pl: any(r.kind == "abWinner" for r in pl.analysis))
    (winner,) = plan.analysis
    assert winner.winner_by is not None and winner.winner_by.metric == "success-rate"
    assert winner.revision == candidate and winner.stable_revision == control
    p.finish("abWinner", "Successful")
    plan = p.run(200, until=phase_is("Healthy"))
    assert plan.status.stable_revision == candidate and dict(plan.routes.weights) == {candidate: 100}


def test_ab_test_control_winning_keeps_the_control() -> None:
    p = deployed(ab({"weight": 20}, winnerBy=WINNER), outcomes={"abWinner": "Failed"})
    control = p.status.stable_revision
    p.update(version=2)
    plan = p.run(4000, until=phase_is("Aborted", "Healthy"))
    assert plan.status.phase == "Aborted" and dict(plan.routes.weights) == {control: 100}
    assert plan.status.abort is not None and plan.status.abort.reason == "ControlWon"
    assert "the control wins on success-rate" in plan.status.abort.message


def test_ab_test_guardrail_failure_stops_the_test_at_once() -> None:
    p = deployed(ab({"weight": 20}, analysis=ANALYSIS, winnerBy=WINNER), outcomes={"abTest": "Failed"})
    control = p.status.stable_revision
    p.update(version=2)
    plan = p.run(120, until=phase_is("Aborted"))
    assert dict(plan.routes.weights) == {control: 100} and plan.status.stable_revision == control
    assert plan.status.abort is not None and plan.status.abort.reason == "GuardrailFailed"


def test_ab_test_without_winner_follows_on_no_winner() -> None:
    keep = deployed(ab({"match": BETA}, winnerBy=WINNER), outcomes={"abWinner": "Inconclusive"})
    keep.update(version=2)
    plan = keep.run(4000, until=phase_is("Aborted", "Healthy"))
    assert plan.status.phase == "Aborted" and plan.status.abort is not None
    assert plan.status.abort.reason == "NoWinner"

    promote = deployed(
        ab({"match": BETA}, winnerBy=WINNER, onNoWinner="promoteCandidate"), outcomes={"abWinner": "Inconclusive"}
    )
    promote.update(version=2)
    plan = promote.run(4000, until=phase_is("Aborted", "Healthy"))
    assert plan.status.phase == "Healthy" and plan.status.stable_revision == plan.status.current_revision

    # Without winnerBy nobody can win: onNoWinner decides as soon as the duration is over
    judged = deployed(ab({"match": BETA}))
    judged.update(version=2)
    plan = judged.run(4000, until=phase_is("Aborted", "Healthy"))
    assert plan.status.abort is not None and plan.status.abort.reason == "NoWinner"


def test_ab_test_verdict_error_pauses() -> None:
    p = deployed(ab({"match": BETA}, winnerBy=WINNER), outcomes={"abWinner": "Error"})
    p.update(version=2)
    plan = p.run(4000, until=phase_is("Paused", "Aborted", "Healthy"))
    assert plan.status.phase == "Paused" and not plan.status.aborted
    assert [c.reason for c in plan.status.pause_conditions or []] == ["AnalysisError"]


def test_ab_test_control_rules_come_first() -> None:
    staff = [{"headers": [{"name": "x-staff", "exact": "1"}]}]
    strategy = ab({"match": BETA})
    strategy["abTest"]["variants"][0]["match"] = staff
    p = deployed(strategy)
    control = p.status.stable_revision
    p.update(version=2)
    plan = p.run(30, until=lambda pl: pl.status.stage == "experiment")
    assert [m.revision for m in plan.routes.matches] == [control, plan.status.current_revision]
    assert dict(plan.routes.weights) == {control: 100}
