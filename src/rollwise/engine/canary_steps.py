"""The canary step machine: steps in order, each done when its condition holds, as many in one
reconcile as the inputs allow; background analysis alongside. Shadow runs its promotion steps here."""

from __future__ import annotations

from rollwise.engine import analysis, base
from rollwise.engine.canary_abort import abort, aborted
from rollwise.engine.canary_layout import finish, layout, replica_wait
from rollwise.engine.clock import span, stamp
from rollwise.engine.outcome import Outcome
from rollwise.engine.steps import Track, describe, replay, unsupported
from rollwise.engine.work import STEP_PAUSE, Ctx, Work
from rollwise.spec.analysis_ref import RolloutAnalysis
from rollwise.spec.status import RunKind
from rollwise.spec.steps import CanaryStep

# Every step may pass in one reconcile; this bounds the loop beyond the step count.
_SLACK = 3


def run_steps(w: Work, ctx: Ctx, track: Track) -> Outcome | None:
    """Advance through the steps as far as the inputs allow; None once promoted."""
    if w.abort is not None:
        return aborted(w, ctx, track)
    steps = track.steps
    if w.step is None:
        w.step = 0
    if ctx.promote == "full":
        ctx.promote = None
        w.step = len(steps)
        w.unpause(STEP_PAUSE)
    for _ in range(len(steps) + _SLACK):
        i = w.step
        if i >= len(steps):
            return finish(w, ctx, track)
        step = steps[i]
        out, ready = layout(w, ctx, track, replay(steps, i + 1, ctx.n))
        label = f"step {i + 1}/{len(steps)} ({describe(step)})"
        problem = unsupported(step, track.routing)
        if problem is not None:
            ctx.invalid.append(f"step {i + 1}: {problem}")
            out.message = f"{label}: cannot be carried out"
            return out
        if background(w, ctx, track, out, i):
            return aborted(w, ctx, track) if w.abort is not None else held(out, label, "analysis inconclusive")
        advance, why = _step(w, ctx, out, step, i, ready)
        if w.abort is not None:
            return aborted(w, ctx, track)
        if ctx.promote == "step":
            ctx.promote = None
            advance = True
        elif base.hold_reason(w) is not None:
            return held(out, label, base.hold_reason(w) or why)
        if not advance:
            out.message = f"{label}: {why}"
            return out
        w.step = i + 1
        w.step_started_at = ctx.now
        w.unpause(STEP_PAUSE)
    raise AssertionError("the step loop must end within the number of steps")


def held(out: Outcome, label: str, why: str) -> Outcome:
    out.message = f"{label}: paused, {why}"
    return out


def _step(w: Work, ctx: Ctx, out: Outcome, step: CanaryStep, i: int, ready: bool) -> tuple[bool, str]:
    """Whether step i is done, and if not what it waits for."""
    if step.pause is None and step.analysis is None:
        # Every set* step is done once the canary has the replicas its new traffic needs, so
        # that a pause after it observes that traffic for its whole duration.
        return ready, replica_wait(ctx, w, out)
    if step.pause is not None:
        if step.pause.duration is None:
            w.pause(STEP_PAUSE, ctx.now)
            return False, "paused until promoted"
        started = w.step_started_at or ctx.now
        end = started + span(step.pause.duration)
        if ctx.now >= end:
            return True, ""
        w.pause(STEP_PAUSE, ctx.now)
        out.wake.append(end)
        return False, f"paused until {stamp(end)}"
    assert step.analysis is not None
    return _analysis_gate(w, ctx, out, step, i)


def _analysis_gate(w: Work, ctx: Ctx, out: Outcome, step: CanaryStep, i: int) -> tuple[bool, str]:
    assert step.analysis is not None
    result = analysis.settle(w, ctx, analysis.track(w, ctx, out, "step", step.analysis, step=i))
    if result == "passed":
        return True, ""
    if result == "failed":
        abort(w, ctx, "AnalysisFailed", f"step {i + 1} analysis failed")
        return False, ""
    return False, "analysis unsure" if result == "unsure" else "waiting for analysis"


def background(w: Work, ctx: Ctx, track: Track, out: Outcome, i: int) -> bool:
    """Background analysis from its starting step on; True when it stops the rollout."""
    bg = track.background
    if bg is None:
        return False
    start = min(bg.starting_step or 0, max(len(track.steps) - 1, 0))
    if i < start:
        return False
    return watch(w, ctx, out, "background", bg)


def watch(w: Work, ctx: Ctx, out: Outcome, kind: RunKind, ref: RolloutAnalysis) -> bool:
    """Analysis that watches the whole update: a failure aborts, an unsure verdict pauses; True
    when either stops the rollout."""
    result = analysis.settle(w, ctx, analysis.track(w, ctx, out, kind, ref))
    if result == "failed":
        abort(w, ctx, "AnalysisFailed", f"{'background' if kind == 'background' else 'gate'} analysis failed")
    return result in ("failed", "unsure")
