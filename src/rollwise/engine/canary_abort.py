"""A canary's abort modes: instant (all traffic to stable in the same plan), gradual (the weight
steps down), freeze (everything held for a human); without a router, a rolling rollback."""

from __future__ import annotations

from rollwise.engine import base, lifecycle
from rollwise.engine.canary_layout import servable
from rollwise.engine.clock import parse, span, stamp
from rollwise.engine.outcome import Outcome
from rollwise.engine.plan import MatchRoute, MirrorRoute
from rollwise.engine.routes import follow_ready, two_way
from rollwise.engine.scaling import limits, reached, transition
from rollwise.engine.steps import Track, replay, sized
from rollwise.engine.work import Ctx, Work


def abort(w: Work, ctx: Ctx, reason: str, message: str) -> None:
    """Begin an abort in the canary's mode (shadow's promotion steps have none: instant)."""
    ca = ctx.spec.strategy.canary
    mode = ca.abort.mode if ca is not None else "instant"
    lifecycle.begin_abort(w, ctx, reason, message, mode)


def aborted(w: Work, ctx: Ctx, track: Track) -> Outcome:
    a = w.abort
    assert a is not None
    stable, canary, n = w.stable, w.current, ctx.n
    if stable is None:
        return base.frozen(w, ctx)
    assert canary is not None
    out = Outcome(roles={stable: "stable", canary: "canary"})
    if track.routing is None:
        goals = {stable: n}
        surge, unavailable = limits(n, track.max_surge, track.max_unavailable)
        out.replicas = transition(ctx, goals, surge, unavailable)
        order = [stable, *(r for r in out.replicas if r != stable)]
        out.weights = follow_ready(ctx, out.replicas, order)
        done = reached(ctx, goals, out.replicas)
        out.waiting = not done
        state = "rolled back" if done else f"rolling back to {stable}"
    elif a.mode == "gradual":
        weight = _gradual(w, ctx, track)
        next_step = parse(w.abort.next_step_at) if w.abort is not None else None
        if next_step is not None:
            out.wake.append(next_step)
        out.replicas = {stable: n, canary: sized(n, weight)}
        out.canary_weight = weight
        out.weights = two_way(stable, canary, weight)
        state = f"stepping the canary down, now at {weight}%" if weight else "all traffic back on stable"
    elif a.mode == "freeze":
        out.replicas = {stable: n, canary: ctx.of(canary).desired}
        # The frozen weight stays remembered even while the canary cannot take it.
        held = w.canary_weight or 0
        out.canary_weight = held
        out.weights = two_way(stable, canary, servable(ctx, out, canary, held, held))
        shape = replay(track.steps, min((w.step or 0) + 1, len(track.steps)), n)
        out.matches = [MatchRoute(name, canary, m) for name, m in shape.headers.items()]
        out.mirrors = [MirrorRoute(name, canary, p, m) for name, (p, m) in shape.mirrors.items()]
        state = "frozen: traffic held; abort again to roll back, resume to continue, retry to start over"
    else:
        out.replicas = {stable: n, canary: 0}
        out.canary_weight = 0
        out.weights = {stable: 100}
        state = "all traffic back on stable"
    out.message = f"aborted ({a.reason}): {a.message}; {state}"
    if track.routing is not None and a.mode == "instant" and ctx.spec.strategy.canary is not None:
        base.keep_aborted_up(w, ctx, out, ctx.spec.strategy.canary.abort_scale_down_delay_seconds)
    base.others_down(w, ctx, out)
    return out


def _gradual(w: Work, ctx: Ctx, track: Track) -> int:
    """The canary weight of a gradual abort: down by stepWeight at once, then every interval."""
    a = w.abort
    assert a is not None and w.current is not None
    step, interval = max(1, int(track.abort.step_weight)), span(track.abort.interval)
    if a.weight is None:
        weight = max(0, (w.canary_weight or 0) - step)
        nxt = ctx.now + interval
    else:
        weight = int(a.weight)
        nxt = parse(a.next_step_at) or ctx.now
        while weight > 0 and nxt <= ctx.now:
            weight = max(0, weight - step)
            nxt += interval
    w.abort = a.model_copy(update={"weight": weight, "next_step_at": stamp(nxt) if weight > 0 else None})
    return weight
