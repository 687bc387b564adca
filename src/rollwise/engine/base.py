"""Situations every strategy with a router shares: no update in progress (steady), the first
revision ever (initial), and the replica map around an update."""

from __future__ import annotations

from rollwise.engine import lifecycle
from rollwise.engine.clock import parse, span, stamp
from rollwise.engine.outcome import Outcome
from rollwise.engine.routes import follow_ready
from rollwise.engine.work import ERROR_PAUSE, INCONCLUSIVE_PAUSE, ROUTER_PAUSE, SPEC_PAUSE, USER_PAUSE, Ctx, Work


def others_down(w: Work, ctx: Ctx, out: Outcome) -> None:
    """Former stable revisions inside their scale-down delay stay at full size; every other
    revision the plan does not mention goes to zero."""
    for rev in lifecycle.kept_up(w, ctx.now):
        out.replicas.setdefault(rev, ctx.n)
        out.roles.setdefault(rev, "old")
    out.wake += lifecycle.scale_down_times(w, ctx.now)
    for rev in ctx.observed.revisions:
        out.replicas.setdefault(rev, 0)
        out.roles.setdefault(rev, "old")


def steady(w: Work, ctx: Ctx) -> Outcome:
    """No update in progress: the stable revision serves everything at full size."""
    stable = w.stable
    assert stable is not None
    out = Outcome(replicas={stable: ctx.n}, weights={stable: 100}, roles={stable: "stable"})
    if w.blue_green is not None:
        out.roles[stable] = "active"
    others_down(w, ctx, out)
    missing = ctx.n - ctx.available(stable)
    if missing > 0:
        out.waiting = True
        out.message = f"revision {stable}: waiting for {missing} of {ctx.n} replicas to become available"
    else:
        out.message = f"revision {stable} is stable and serves all traffic"
    return out


def initial(w: Work, ctx: Ctx, *, scale_down_delay: float = 0.0) -> Outcome | None:
    """The first revision: nothing to compare with, so no steps. Anything still running from an
    earlier, unfinished first revision serves until this one is complete. None once promoted."""
    target = w.current
    assert target is not None
    others = [r for r in ctx.observed.revisions if r != target]
    if w.abort is not None:
        return frozen(w, ctx)
    if ctx.fully_ready(target, ctx.n):
        lifecycle.promote(w, ctx, scale_down_delay=scale_down_delay, message=f"first revision {target} is up")
        return None
    out = Outcome(replicas={target: ctx.n}, roles={target: "canary"})
    for rev in others:
        out.replicas[rev] = ctx.of(rev).desired
    out.weights = follow_ready(ctx, out.replicas, [target, *others])
    out.waiting = True
    out.message = (
        f"first revision {target}: {ctx.available(target)} of {ctx.n} replicas available; no steps for a first revision"
    )
    others_down(w, ctx, out)
    return out


def frozen(w: Work, ctx: Ctx) -> Outcome:
    """An aborted update with nothing to return to: hold every replica, route by readiness, wait."""
    assert w.abort is not None and w.current is not None
    revisions = [w.current, *(r for r in ctx.observed.revisions if r != w.current)]
    out = Outcome(replicas={r: ctx.of(r).desired for r in revisions}, roles={w.current: "canary"})
    out.weights = follow_ready(ctx, out.replicas, revisions)
    out.message = f"aborted: {w.abort.message}; holding: retry, undo, or change the spec"
    others_down(w, ctx, out)
    return out


def switch(w: Work, ctx: Ctx, label: str, *, scale_down_delay: float) -> Outcome | None:
    """An atomic switch: the new revision gets every replica, and all traffic only once every one
    of them is available; then it is promoted (the old stable kept up for the delay). None once
    promoted."""
    stable, target, n = w.stable, w.current, ctx.n
    assert stable is not None and target is not None
    if ctx.fully_ready(target, n):
        lifecycle.promote(w, ctx, scale_down_delay=scale_down_delay)
        return None
    out = Outcome(replicas={stable: n, target: n}, weights={stable: 100}, roles={stable: "stable", target: "canary"})
    out.waiting = True
    out.message = f"{label}: switching to {target} once all replicas are available ({ctx.available(target)} of {n})"
    others_down(w, ctx, out)
    return out


def rolled_back(w: Work, ctx: Ctx) -> Outcome:
    """An instant abort: all traffic on stable in this very plan, the new revision scaled down."""
    stable, target = w.stable, w.current
    assert w.abort is not None and target is not None
    if stable is None:
        return frozen(w, ctx)
    out = Outcome(
        replicas={stable: ctx.n, target: 0}, weights={stable: 100}, roles={stable: "stable", target: "canary"}
    )
    out.message = f"aborted ({w.abort.reason}): {w.abort.message}; all traffic back on stable"
    out.waiting = ctx.available(stable) < ctx.n
    others_down(w, ctx, out)
    return out


def held(w: Work, ctx: Ctx, why: str) -> Outcome:
    """A paused rollout without steps (rolling, recreate): every revision keeps the replicas it
    has, as a paused Deployment does; traffic follows them."""
    revisions = [r for r in (w.stable, w.current) if r is not None]
    revisions += sorted(r for r in ctx.observed.revisions if r not in revisions)
    out = Outcome(replicas={r: ctx.of(r).desired for r in revisions})
    out.roles = {r: ("stable" if r == w.stable else "canary" if r == w.current else "old") for r in revisions}
    out.weights = follow_ready(ctx, out.replicas, revisions)
    out.message = f"paused: {why}"
    return out


def pause_reason(w: Work) -> str | None:
    """Why a human, the spec or the platform's router holds the rollout, if one does."""
    if SPEC_PAUSE in w.pauses:
        return "spec.paused is true"
    if ROUTER_PAUSE in w.pauses:
        return "held: the router could not put the routes in force; fix it, then resume"
    if USER_PAUSE in w.pauses:
        return "paused by a user: resume to continue"
    return None


def hold_reason(w: Work) -> str | None:
    """Why the rollout may not move on: a human, the spec, or an inconclusive verdict."""
    if INCONCLUSIVE_PAUSE in w.pauses:
        return "analysis inconclusive: promote to accept, resume to run it again, abort to roll back"
    if ERROR_PAUSE in w.pauses:
        return "analysis could not measure (error): promote to accept, resume to run it again, abort to roll back"
    return pause_reason(w)


def keep_aborted_up(w: Work, ctx: Ctx, out: Outcome, delay: int | None) -> None:
    """The aborted revision keeps its replicas `delay` seconds after the abort (the abort's time is
    in the status, so the deadline survives a restart); 0 keeps them until retry, undo or a new
    spec; None scales it down at once."""
    aborted, at = w.current, parse(w.abort.at if w.abort is not None else None)
    if delay is None or aborted is None or at is None:
        return
    kept = ctx.of(aborted).desired
    if kept == 0:
        return
    if delay == 0:
        out.replicas[aborted] = kept
        out.message += f"; {aborted} kept up (abortScaleDownDelaySeconds: 0)"
        return
    until = at + span(delay)
    if ctx.now < until:
        out.replicas[aborted] = kept
        out.wake.append(until)
        out.message += f"; {aborted} kept up until {stamp(until)}"
