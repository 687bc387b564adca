"""Shadow: the new revision receives a mirrored share of live traffic and serves no user. After
`duration` of mirroring and passed analysis it is promoted, by an instant switch or by the
promotion steps run as a canary."""

from __future__ import annotations

from rollwise.engine import analysis, base, lifecycle
from rollwise.engine.analysis import NO_JUDGE, Judge
from rollwise.engine.canary_steps import run_steps
from rollwise.engine.clock import span, stamp
from rollwise.engine.outcome import Outcome
from rollwise.engine.plan import MirrorRoute
from rollwise.engine.steps import Track, sized
from rollwise.engine.work import UNSURE_PAUSES, Ctx, Work
from rollwise.spec.analysis_ref import RolloutAnalysis
from rollwise.spec.status import RunKind
from rollwise.spec.strategies.canary import AbortPolicy
from rollwise.spec.strategies.shadow import ShadowStrategy

STARTING, MIRRORING, SWITCHING, STEPS = "starting", "mirroring", "switching", "promotionSteps"


def reconcile(w: Work, ctx: Ctx) -> Outcome:
    sh = ctx.spec.strategy.shadow
    assert sh is not None
    delay = float(sh.scale_down_delay_seconds)
    if not w.updating:
        return base.steady(w, ctx)
    if w.stable is None:
        return base.initial(w, ctx, scale_down_delay=delay) or base.steady(w, ctx)
    if w.abort is not None and w.stage != STEPS:
        return base.rolled_back(w, ctx)
    if w.stage in (None, STARTING, MIRRORING):
        out = _mirror(w, ctx, sh)
        if out is not None:
            return out
    if w.stage == SWITCHING:
        return base.switch(w, ctx, "shadow passed", scale_down_delay=delay) or base.steady(w, ctx)
    track = Track(sh.promotion.steps or [], sh.traffic_routing, None, AbortPolicy(), "25%", 0, delay)
    return run_steps(w, ctx, track) or base.steady(w, ctx)


def _mirror(w: Work, ctx: Ctx, sh: ShadowStrategy) -> Outcome | None:
    """The shadow phase; None once it is over and promotion begins."""
    stable, shadow, n = w.stable, w.current, ctx.n
    assert stable is not None and shadow is not None
    count = max(1, sized(n, sh.mirror_percent)) if n > 0 else 0
    out = Outcome(
        replicas={stable: n, shadow: count}, weights={stable: 100}, roles={stable: "stable", shadow: "canary"}
    )
    out.mirrors = [MirrorRoute("shadow", shadow, sh.mirror_percent)]
    base.others_down(w, ctx, out)
    if w.stage is None:
        w.stage = STARTING
    if ctx.promote is not None:
        # A human ends the shadow phase now; --full also skips the promotion steps.
        _next_stage(w, ctx, sh, skip_steps=ctx.promote == "full")
        ctx.promote = None
        return None
    if w.stage == STARTING:
        if not ctx.fully_ready(shadow, count):
            out.waiting = True
            out.message = f"shadow {shadow}: {ctx.available(shadow)} of {count} replicas available"
            return out
        w.stage, w.stage_started_at = MIRRORING, ctx.now
    started = w.stage_started_at or ctx.now
    end = started + span(sh.duration)
    # Both judge the shadow phase: the comparison of replies (when set) and the analysis (when set).
    gates: list[tuple[RunKind, RolloutAnalysis | None, Judge, str]] = []
    if sh.compare is not None:
        gates.append(("shadowCompare", None, Judge(compare=sh.compare), "reply comparison"))
    if sh.analysis is not None:
        gates.append(("shadow", sh.analysis, NO_JUDGE, "analysis"))
    passed = True
    for kind, ref, judge, what in gates:
        result = analysis.settle(w, ctx, analysis.track(w, ctx, out, kind, ref, judge=judge))
        if result == "failed":
            lifecycle.begin_abort(w, ctx, "AnalysisFailed", f"shadow {what} failed")
            return base.rolled_back(w, ctx)
        passed = passed and result == "passed"
    blocked = base.hold_reason(w)
    if blocked is not None:
        out.message = f"mirroring {sh.mirror_percent}% to {shadow}: paused, {blocked}"
        return out
    if ctx.now < end:
        out.wake.append(end)
        out.message = f"mirroring {sh.mirror_percent}% to {shadow} until {stamp(end)}"
        return out
    if not passed:
        out.message = f"mirrored {sh.mirror_percent}% to {shadow} for {sh.duration}: waiting for the verdicts"
        return out
    _next_stage(w, ctx, sh, skip_steps=False)
    return None


def _next_stage(w: Work, ctx: Ctx, sh: ShadowStrategy, *, skip_steps: bool) -> None:
    w.stage = STEPS if sh.promotion.steps and not skip_steps else SWITCHING
    w.stage_started_at = ctx.now
    w.step = 0
    w.step_started_at = ctx.now
    w.unpause(*UNSURE_PAUSES)
