"""Rolling update: replace replicas a few at a time within maxSurge / maxUnavailable; traffic
follows ready replicas. An abort rolls back the same way."""

from __future__ import annotations

from rollwise.engine import base, lifecycle
from rollwise.engine.outcome import Outcome
from rollwise.engine.routes import follow_ready
from rollwise.engine.scaling import limits, reached, transition
from rollwise.engine.work import Ctx, Work


def reconcile(w: Work, ctx: Ctx) -> Outcome:
    ru = ctx.spec.strategy.rolling_update
    assert ru is not None and w.current is not None
    if w.abort is not None and w.stable is None:
        return base.frozen(w, ctx)
    paused = base.pause_reason(w)
    if paused is not None:
        return base.held(w, ctx, paused)
    goal = w.stable if w.abort is not None else w.current
    assert goal is not None
    n = ctx.n
    surge, unavailable = limits(n, ru.max_surge, ru.max_unavailable)
    goals = {goal: n}
    planned = transition(ctx, goals, surge, unavailable)
    order = [goal, *(r for r in planned if r != goal)]
    out = Outcome(replicas=planned, weights=follow_ready(ctx, planned, order))
    done = reached(ctx, goals, planned)
    if done and w.updating and w.abort is None:
        lifecycle.promote(w, ctx, scale_down_delay=0)
    out.roles = {r: ("stable" if r == w.stable else "canary" if r == goal else "old") for r in planned}
    out.waiting = not done
    old = sum(c for r, c in planned.items() if r != goal)
    if done:
        out.message = f"revision {goal} is stable and serves all traffic"
    else:
        out.message = (
            f"rolling to {goal}: {ctx.available(goal)} of {n} available, {old} old replica"
            f"{'s' if old != 1 else ''} left (maxSurge {surge}, maxUnavailable {unavailable})"
        )
    if w.abort is not None:
        out.message = f"aborted: {w.abort.message}; " + ("rolled back" if done else out.message)
    return out
