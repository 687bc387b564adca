"""Replicas and routes of a canary at one traffic shape, and the final promotion."""

from __future__ import annotations

from rollwise.engine import base, lifecycle
from rollwise.engine.outcome import Outcome
from rollwise.engine.plan import MatchRoute, MirrorRoute
from rollwise.engine.routes import follow_ready, two_way
from rollwise.engine.scaling import limits, reached, transition
from rollwise.engine.steps import Shape, Track, replay
from rollwise.engine.work import Ctx, Work


def layout(w: Work, ctx: Ctx, track: Track, shape: Shape) -> tuple[Outcome, bool]:
    """Replicas and routes for a traffic shape. With a router the stable revision keeps every
    replica (it must take all traffic back at once on abort) and a weight is routed only once the
    canary replicas it needs are available; without one, replicas are the weights. Also says
    whether the shape is reached."""
    stable, canary, n = w.stable, w.current, ctx.n
    assert stable is not None and canary is not None
    out = Outcome(roles={stable: "stable", canary: "canary"})
    if track.routing is not None:
        out.replicas = {stable: n, canary: shape.replicas}
        gate = ctx.available(canary) >= shape.replicas
        routed = shape.weight if gate else min(shape.weight, w.canary_weight or 0)
        out.canary_weight = servable(ctx, out, canary, routed, shape.weight)
        out.weights = two_way(stable, canary, out.canary_weight)
        out.matches = [MatchRoute(name, canary, m) for name, m in shape.headers.items()]
        out.mirrors = [MirrorRoute(name, canary, p, m) for name, (p, m) in shape.mirrors.items()]
        ready = gate
        out.waiting = not gate or ctx.available(stable) < n
    else:
        c = min(shape.replicas, n)
        goals = {canary: c, stable: n - c}
        surge, unavailable = limits(n, track.max_surge, track.max_unavailable)
        out.replicas = transition(ctx, goals, surge, unavailable)
        order = [stable, canary, *(r for r in out.replicas if r not in (stable, canary))]
        out.weights = follow_ready(ctx, out.replicas, order)
        ready = reached(ctx, goals, out.replicas)
        out.waiting = not ready
    base.others_down(w, ctx, out)
    return out, ready


def servable(ctx: Ctx, out: Outcome, canary: str, weight: int, wanted: int) -> int:
    """The canary's weight is 0 while it has no ready replica; say so whenever the step wants it
    to have weight (not only when weight was routed before: the message must not depend on it)."""
    if ctx.ready(canary) > 0:
        return weight
    if wanted > 0:
        out.notes.append(f"canary {canary} has no ready replica: its traffic stays on stable")
    return 0


def replica_wait(ctx: Ctx, w: Work, out: Outcome) -> str:
    want = out.replicas.get(w.current or "", 0)
    return f"waiting for canary replicas ({ctx.available(w.current)} of {want} available)"


def finish(w: Work, ctx: Ctx, track: Track) -> Outcome | None:
    """After the last step: the canary takes every replica, then all traffic, then is stable."""
    stable, canary, n = w.stable, w.current, ctx.n
    assert stable is not None and canary is not None
    out = Outcome(roles={stable: "stable", canary: "canary"})
    if track.routing is not None:
        if ctx.fully_ready(canary, n):
            lifecycle.promote(w, ctx, scale_down_delay=track.scale_down_delay)
            return None
        out.replicas = {stable: n, canary: n}
        out.canary_weight = servable(ctx, out, canary, w.canary_weight or 0, 100)
        out.weights = two_way(stable, canary, out.canary_weight)
        last = replay(track.steps, len(track.steps), n)
        out.matches = [MatchRoute(name, canary, m) for name, m in last.headers.items()]
    else:
        goals = {canary: n}
        surge, unavailable = limits(n, track.max_surge, track.max_unavailable)
        out.replicas = transition(ctx, goals, surge, unavailable)
        if reached(ctx, goals, out.replicas):
            lifecycle.promote(w, ctx, scale_down_delay=0)
            return None
        order = [stable, canary, *(r for r in out.replicas if r not in (stable, canary))]
        out.weights = follow_ready(ctx, out.replicas, order)
    out.waiting = True
    out.message = f"promoting {canary}: {ctx.available(canary)} of {n} replicas available"
    base.others_down(w, ctx, out)
    return out
