"""Dynamic canary: the velocity policy on its own, then driving a rollout."""

from __future__ import annotations

from typing import Any

from rollwise.engine import PolicyState, VelocityPolicy
from tests.engine.harness import LOCAL, deployed, phase_is


def policy(velocity: str = "exponential") -> VelocityPolicy:
    return VelocityPolicy(min_step=5, max_step=30, start_weight=5, max_weight=100, velocity=velocity)  # type: ignore[arg-type]


def walk(p: VelocityPolicy, verdicts: list[str | None]) -> list[tuple[str, int]]:
    state = p.start()
    out = []
    for v in verdicts:
        d = p.decide(state, v)  # type: ignore[arg-type]
        out.append((d.action, d.state.weight))
        state = d.state
    return out


def test_exponential_velocity_doubles_the_step_up_to_the_maximum() -> None:
    steps = walk(policy(), ["Successful"] * 6)
    assert [w for _, w in steps] == [10, 20, 40, 70, 100, 100]
    assert steps[4][0] == "promote"


def test_linear_velocity_grows_the_step_by_the_minimum() -> None:
    assert [w for _, w in walk(policy("linear"), ["Successful"] * 5)] == [10, 20, 35, 55, 80]


def test_inconclusive_holds_and_slows_down_failure_aborts() -> None:
    steps = walk(policy(), ["Successful", "Successful", "Inconclusive", "Successful", "Failed"])
    assert steps == [("raise", 10), ("raise", 20), ("hold", 20), ("raise", 25), ("abort", 25)]


def test_no_analysis_means_time_alone_raises() -> None:
    d = policy().decide(PolicyState(weight=50, step_weight=30, raises=3), None)
    assert d.action == "raise" and d.state.weight == 80


def dynamic(**options: Any) -> dict[str, Any]:
    return {
        "canary": {
            "trafficRouting": LOCAL,
            "dynamic": {
                "minStepWeight": 10,
                "maxStepWeight": 40,
                "startWeight": 10,
                "interval": "1m",
                "velocity": "exponential",
                **options,
            },
        }
    }


def test_dynamic_rollout_raises_per_interval_on_the_judge_verdicts_and_promotes() -> None:
    p = deployed(dynamic(), replicas=10, outcomes={"dynamic": "Successful"}, analysis_after=30)
    stable = p.status.stable_revision
    p.update(version=2)
    weights: list[int] = []
    since = len(p.plans)
    plan = p.run(1200, until=phase_is("Healthy"))
    for pl in p.plans[since:]:
        w = pl.routes.weights.get(pl.status.current_revision or "", 0)
        if pl.status.stable_revision == stable and (not weights or weights[-1] != w):
            weights.append(w)
    assert weights == [0, 10, 20, 40, 80]
    assert plan.status.stable_revision != stable
    # Each interval was judged by its own run, which carries the judge's settings
    judged = [r for r in p.runs.values() if r.request.kind == "dynamic"]
    assert len(judged) == 4 and all(r.request.dynamic is not None for r in judged)
    assert all(r.request.templates == () for r in judged)


def test_dynamic_holds_on_inconclusive_and_aborts_on_failure() -> None:
    p = deployed(dynamic(), replicas=10)
    stable = p.status.stable_revision
    p.update(version=2)
    plan = p.run(30, until=lambda pl: bool(pl.analysis))
    new = plan.status.current_revision
    (first,) = [r.name for r in plan.analysis]
    p.finish("dynamic", "Inconclusive")
    plan = p.run(61, until=lambda pl: bool(pl.analysis) and pl.analysis[0].name != first)
    # Held: same weight, a new interval with a new judgement, the step back to the minimum
    assert plan.routes.weights.get(new) == 10 and plan.status.phase == "Progressing"
    assert plan.status.dynamic is not None and plan.status.dynamic.interval == 1
    assert plan.status.dynamic.step_weight == 10 and plan.status.dynamic.raises == 0
    # Evidence of harm aborts at once, mid-interval
    p.finish("dynamic", "Failed")
    plan = p.reconcile()
    assert plan.status.phase == "Aborted" and dict(plan.routes.weights) == {stable: 100}


def test_dynamic_analysis_is_a_gate_alongside_the_judge() -> None:
    p = deployed(dynamic(analysis={"templates": [{"templateName": "business"}]}), replicas=10)
    stable = p.status.stable_revision
    p.update(version=2)
    plan = p.run(30, until=lambda pl: len(pl.analysis) == 2)
    assert sorted(r.kind for r in plan.analysis) == ["dynamic", "gate"]
    gate = next(r for r in plan.analysis if r.kind == "gate")
    assert gate.templates == (("business", False),)
    p.finish("gate", "Failed")
    plan = p.reconcile()
    assert plan.status.phase == "Aborted" and dict(plan.routes.weights) == {stable: 100}
