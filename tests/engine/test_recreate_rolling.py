"""Recreate and rolling update scenarios."""

from __future__ import annotations

from rollwise.engine import Command, Observed, Plan
from tests.engine.harness import Platform, deployed, phase_is


def test_recreate_stops_every_old_replica_before_starting_and_reports_downtime() -> None:
    # Given 3 replicas that take 4 s to drain and 6 s to start
    p = deployed({"recreate": {}}, replicas=3, drain_after=4, ready_after=6)
    old = p.status.stable_revision
    # When a new revision is rolled out
    p.update(version=2)
    plan = p.reconcile()
    new = plan.status.current_revision
    # Then the old one is scaled to zero and the new one not started yet
    assert plan.replicas == {old: 0, new: 0} and dict(plan.routes.weights) == {}
    assert plan.status.downtime is not None and plan.status.downtime.ended_at is None
    # While old replicas drain, the new one still does not start
    p.advance(3)
    assert p.reconcile().replicas[new] == 0
    p.advance(1)
    plan = p.reconcile()
    assert plan.replicas == {old: 0, new: 3}
    # Then once the new one serves, the downtime window is closed and reported
    plan = p.run(30, until=phase_is("Healthy"))
    assert dict(plan.routes.weights) == {new: 100}
    d = plan.status.downtime
    assert d is not None and d.seconds == 10.0 and d.revision == new
    assert plan.status.last_completion is not None and "10s of downtime" in (plan.status.last_completion.message or "")
    # And at no point did two revisions have replicas at once
    for earlier in p.plans:
        assert sum(1 for c in earlier.replicas.values() if c > 0) <= 1


def test_recreate_abort_recreates_the_stable_revision() -> None:
    p = deployed({"recreate": {}}, replicas=2, progressDeadlineSeconds=30, progressDeadlineAbort=True)
    old = p.status.stable_revision
    p.update(version=2)
    new = p.reconcile().status.current_revision
    p.crash(new)
    plan = p.run(120, until=lambda pl: pl.status.aborted and pl.routes.weights.get(old) == 100)
    assert plan.status.phase == "Aborted" and plan.replicas == {old: 2, new: 0}


def rolling(surge: int | str, unavailable: int | str) -> dict[str, object]:
    return {"rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}


def bounds(n: int, surge: int, unavailable: int):  # type: ignore[no-untyped-def]
    def check(p: Platform, plan: Plan, observed: Observed) -> None:
        assert sum(plan.replicas.values()) <= n + surge, plan.replicas
        after = sum(min(observed.of(r).available, c) for r, c in plan.replicas.items())
        before = sum(o.available for o in observed.revisions.values())
        assert after >= min(n - unavailable, before), (plan.replicas, observed)

    return check


def test_rolling_update_respects_surge_and_unavailable_with_kubernetes_rounding() -> None:
    # 10 replicas: maxSurge 25% rounds up to 3, maxUnavailable 25% rounds down to 2
    p = deployed(rolling("25%", "25%"), replicas=10)
    p.checks.append(bounds(10, 3, 2))
    old = p.status.stable_revision
    p.update(version=2)
    plan = p.reconcile()
    new = plan.status.current_revision
    assert plan.replicas == {old: 8, new: 5}
    plan = p.run(120, until=phase_is("Healthy"))
    assert plan.replicas == {old: 0, new: 10} and dict(plan.routes.weights) == {new: 100}


def test_rolling_with_both_zero_makes_unavailable_one() -> None:
    p = deployed(rolling(0, "0%"), replicas=3)
    p.checks.append(bounds(3, 0, 1))
    old = p.status.stable_revision
    p.update(version=2)
    plan = p.reconcile()
    new = plan.status.current_revision
    assert plan.replicas == {old: 2, new: 1}
    assert "maxUnavailable 1" in (plan.status.message or "")
    plan = p.run(120, until=phase_is("Healthy"))
    assert plan.replicas[new] == 3


def test_rolling_traffic_follows_ready_replicas() -> None:
    seen: list[dict[str, int]] = []

    def proportional(p: Platform, plan: Plan, observed: Observed) -> None:
        serving = {r: min(observed.of(r).ready, c) for r, c in plan.replicas.items()}
        total = sum(serving.values())
        for r, weight in plan.routes.weights.items():
            assert abs(weight - 100 * serving[r] / total) < 1, (plan.routes.weights, serving)
        seen.append(dict(plan.routes.weights))

    p = deployed(rolling(1, 0), replicas=4)
    p.checks.append(proportional)
    old = p.status.stable_revision
    p.update(version=2)
    plan = p.run(120, until=phase_is("Healthy"))
    new = plan.status.current_revision
    assert {old: 75, new: 25} in seen and {old: 50, new: 50} in seen and {old: 25, new: 75} in seen


def test_min_ready_seconds_holds_the_old_replicas_until_new_ones_are_available() -> None:
    p = deployed(rolling(1, 0), replicas=2, minReadySeconds=10, ready_after=1)
    old = p.status.stable_revision
    p.update(version=2)
    plan = p.reconcile()
    new = plan.status.current_revision
    assert plan.replicas == {old: 2, new: 1}
    p.advance(5)  # ready but not yet available
    plan = p.reconcile()
    assert plan.replicas == {old: 2, new: 1} and plan.routes.weights.get(new, 0) > 0
    p.advance(6)
    plan = p.reconcile()
    assert plan.replicas[old] == 1
    assert p.plan.min_ready_seconds == 10


def test_rolling_abort_by_deadline_rolls_back() -> None:
    p = deployed(rolling(1, 1), replicas=4, progressDeadlineSeconds=60, progressDeadlineAbort=True)
    old = p.status.stable_revision
    p.update(version=2)
    new = p.reconcile().status.current_revision
    p.crash(new)
    plan = p.run(300, until=lambda pl: pl.status.aborted and pl.replicas.get(new) == 0)
    plan = p.run(60)
    assert plan.status.phase == "Aborted" and plan.replicas == {old: 4, new: 0}
    assert dict(plan.routes.weights) == {old: 100}
    # Retry tries again; a fixed revision (a new spec) succeeds
    p.update(version=3)
    plan = p.run(120, until=phase_is("Healthy"))
    assert plan.status.stable_revision not in (old, new)


def test_rolling_undo_goes_back_to_the_previous_revision() -> None:
    p = deployed(rolling(1, 0), replicas=2)
    first = p.status.stable_revision
    p.update(version=2)
    p.run(120, until=phase_is("Healthy"))
    plan = p.reconcile(Command("undo"))
    assert plan.status.current_revision == first
    plan = p.run(120, until=phase_is("Healthy"))
    assert plan.status.stable_revision == first and dict(plan.routes.weights) == {first: 100}


def test_a_paused_rolling_update_holds_its_replicas() -> None:
    p = deployed(rolling(1, 0), replicas=4)
    old = p.status.stable_revision
    p.update(version=2)
    plan = p.run(3, until=lambda pl: pl.replicas.get(pl.status.current_revision or "", 0) == 2)
    new = plan.status.current_revision
    held = dict(plan.replicas)
    plan = p.reconcile(Command("pause"))
    plan = p.run(300)
    assert plan.status.phase == "Paused" and dict(plan.replicas) == held
    assert plan.replicas[old] + plan.replicas[new] <= 5
    p.reconcile(Command("resume"))
    plan = p.run(120, until=phase_is("Healthy"))
    assert plan.status.stable_revision == new
