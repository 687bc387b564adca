"""Moving replica counts toward goals within maxSurge / maxUnavailable, as a Deployment does:
rolling updates, canaries without a router, and their rollbacks all use it."""

from __future__ import annotations

from collections.abc import Mapping

from rollwise.engine.work import Ctx
from rollwise.spec.common import resolve_int_or_percent


def limits(n: int, max_surge: int | str, max_unavailable: int | str) -> tuple[int, int]:
    """Kubernetes' rounding: surge rounds up, unavailability down; both 0 would deadlock, so
    unavailability becomes 1."""
    surge = resolve_int_or_percent(max_surge, n, round_up=True)
    unavailable = resolve_int_or_percent(max_unavailable, n, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def transition(ctx: Ctx, goals: Mapping[str, int], surge: int, unavailable: int) -> dict[str, int]:
    """One move toward `goals` (in scale-up priority order; any other revision's goal is 0):
    never more than n + surge replicas asked for, never fewer than n - unavailable available
    (unless fewer already were — then no available replica is removed)."""
    n = ctx.n
    revisions = list(goals) + sorted(r for r in ctx.observed.revisions if r not in goals)
    current = {r: ctx.of(r).desired for r in revisions}
    available = {r: min(ctx.available(r), current[r]) for r in revisions}
    planned = dict(current)
    spare = sum(available.values()) - (n - unavailable)
    # Revisions that are going away entirely shrink first, then those still wanted, last first.
    order = [r for r in revisions if r not in goals] + list(reversed(list(goals)))
    for rev in order:
        excess = planned[rev] - goals.get(rev, 0)
        if excess <= 0:
            continue
        # Replicas that are not available cost nothing to remove.
        free = min(excess, planned[rev] - available[rev])
        planned[rev] -= free
        excess -= free
        take = min(excess, max(spare, 0))
        planned[rev] -= take
        spare -= take
    # Growing after shrinking lets one plan do both within the surge (a Deployment needs two syncs).
    room = n + surge - sum(planned.values())
    for rev, goal in goals.items():
        if room <= 0:
            break
        if goal > planned[rev]:
            grow = min(goal - planned[rev], room)
            planned[rev] += grow
            room -= grow
    return planned


def reached(ctx: Ctx, goals: Mapping[str, int], planned: Mapping[str, int]) -> bool:
    """The goals are met: every goal revision has its replicas available, every other is at 0."""
    for rev, count in planned.items():
        goal = goals.get(rev, 0)
        if count != goal:
            return False
        if goal and ctx.available(rev) < goal:
            return False
    return True
