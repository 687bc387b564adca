"""Recreate: every old replica is gone before the first new one starts. The gap in between is
the downtime window, recorded in the status."""

from __future__ import annotations

from rollwise.engine import base, lifecycle
from rollwise.engine.clock import parse, stamp
from rollwise.engine.outcome import Outcome
from rollwise.engine.work import Ctx, Work
from rollwise.spec.status import DowntimeWindow

STOPPING, STARTING = "stoppingOld", "startingNew"


def reconcile(w: Work, ctx: Ctx) -> Outcome:
    # An abort recreates the stable revision; a first revision has none, so it just holds.
    if w.abort is not None and w.stable is None:
        return base.frozen(w, ctx)
    paused = base.pause_reason(w)
    if paused is not None:
        return base.held(w, ctx, paused)
    goal = w.stable if w.abort is not None else w.current
    assert goal is not None
    n = ctx.n
    others = [r for r in ctx.observed.revisions if r != goal]
    still = {r: ctx.of(r).present for r in others if ctx.of(r).present > 0 or ctx.of(r).desired > 0}
    out = Outcome(roles={goal: "stable" if goal == w.stable else "canary"})
    if w.updating or w.abort is not None:
        w.stage = STOPPING if still else STARTING
    if still:
        serving = any(ctx.ready(r) > 0 for r in others)
        if serving and w.current != w.stable and (w.downtime is None or w.downtime.revision != goal):
            w.downtime = DowntimeWindow(revision=goal, started_at=stamp(ctx.now))
        out.replicas = {goal: 0, **{r: 0 for r in others}}
        left = sum(still.values())
        out.message = f"recreate: stopping {', '.join(sorted(still))} ({left} replica{'s' if left != 1 else ''} left)"
        out.message += f" before starting {goal}"
        out.waiting = True
    else:
        out.replicas = {goal: n}
        _end_downtime(w, ctx, goal)
        missing = n - ctx.available(goal)
        if missing > 0:
            out.waiting = True
            out.message = f"recreate: starting {goal}, {ctx.available(goal)} of {n} replicas available"
        elif w.updating and w.abort is None:
            lifecycle.promote(w, ctx, scale_down_delay=0, message=_promoted(w, goal))
            out.roles = {goal: "stable"}
            out.message = f"revision {goal} is stable and serves all traffic"
        else:
            out.message = f"revision {goal} is stable and serves all traffic"
    if w.abort is not None:
        out.message = f"aborted: {w.abort.message}; " + out.message
    for r in others:
        out.roles.setdefault(r, "old")
    # Old replicas leave the route table when they are told to stop (they drain, then exit):
    # from then until the new revision is ready, the table is empty. That is the downtime.
    out.weights = {goal: 100} if ctx.ready(goal) > 0 else {}
    if w.downtime is not None and w.downtime.ended_at is None:
        out.message += f"; downtime since {w.downtime.started_at}"
    return out


def _end_downtime(w: Work, ctx: Ctx, goal: str) -> None:
    d = w.downtime
    if d is None or d.ended_at is not None or d.revision != goal or ctx.ready(goal) == 0:
        return
    started = parse(d.started_at)
    assert started is not None
    seconds = (ctx.now - started).total_seconds()
    w.downtime = d.model_copy(update={"ended_at": stamp(ctx.now), "seconds": seconds})


def _promoted(w: Work, goal: str) -> str:
    d = w.downtime
    if d is not None and d.revision == goal and d.seconds is not None:
        return f"revision {goal} promoted to stable after {d.seconds:g}s of downtime"
    return f"revision {goal} promoted to stable"
