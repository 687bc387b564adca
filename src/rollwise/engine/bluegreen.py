"""Blue-green: the new revision runs beside the active one, reachable on the preview service.
Once every preview replica is ready and pre-promotion analysis passed, and promotion is approved
(by a human, or automatically), active switches atomically; post-promotion analysis can still
switch it back. The former active stays up for scaleDownDelaySeconds."""

from __future__ import annotations

from typing import Any

from rollwise.engine import analysis, base, lifecycle
from rollwise.engine.clock import parse, span, stamp
from rollwise.engine.outcome import Outcome
from rollwise.engine.work import BLUE_GREEN_PAUSE, Ctx, Work
from rollwise.spec.status import BlueGreenStatus
from rollwise.spec.strategies.bluegreen import BlueGreenStrategy

PREVIEW, PROMOTING, SWITCHED = "preview", "promoting", "switched"


def reconcile(w: Work, ctx: Ctx) -> Outcome:
    bg = ctx.spec.strategy.blue_green
    assert bg is not None
    if w.blue_green is None:
        w.blue_green = BlueGreenStatus(active_revision=w.stable)
    delay = float(bg.scale_down_delay_seconds)
    if not w.updating:
        return base.steady(w, ctx)
    if w.stable is None:
        return base.initial(w, ctx, scale_down_delay=delay) or base.steady(w, ctx)
    if w.abort is not None:
        return _aborted(w, ctx, bg)
    if ctx.promote is not None:
        _set(w, approved=True, skip_analysis=w.blue_green.skip_analysis or ctx.promote == "full")
        ctx.promote = None
        w.unpause(BLUE_GREEN_PAUSE)
    if w.blue_green.switched_at is None:
        out = _preview(w, ctx, bg)
        if out is not None:
            return out
    return _post(w, ctx, bg) or base.steady(w, ctx)


def _set(w: Work, **changes: Any) -> BlueGreenStatus:
    assert w.blue_green is not None
    w.blue_green = w.blue_green.model_copy(update=changes)
    return w.blue_green


def _preview(w: Work, ctx: Ctx, bg: BlueGreenStrategy) -> Outcome | None:
    """Before the switch. None once active has switched to the preview revision."""
    active, preview, n = w.stable, w.current, ctx.n
    assert active is not None and preview is not None and w.blue_green is not None
    count = n if bg.preview_replica_count is None else min(bg.preview_replica_count, n)
    out = Outcome(weights={active: 100}, preview=preview, roles={active: "active", preview: "preview"})
    out.replicas = {active: n, preview: n if w.blue_green.approved else count}
    base.others_down(w, ctx, out)
    st = w.blue_green
    w.stage = PROMOTING if st.approved else PREVIEW
    if st.preview_revision != preview:
        st = _set(w, preview_revision=preview)
    if st.preview_ready_at is None:
        if not ctx.fully_ready(preview, count):
            out.waiting = True
            out.message = f"preview {preview}: {ctx.available(preview)} of {count} replicas available"
            return out
        st = _set(w, preview_ready_at=stamp(ctx.now))
    if bg.pre_promotion_analysis is not None and not st.skip_analysis:
        result = analysis.settle(w, ctx, analysis.track(w, ctx, out, "prePromotion", bg.pre_promotion_analysis))
        if result == "failed":
            lifecycle.begin_abort(w, ctx, "AnalysisFailed", "pre-promotion analysis failed")
            return _aborted(w, ctx, bg)
        if result != "passed":
            out.message = f"preview {preview} ready: " + (base.hold_reason(w) or "waiting for pre-promotion analysis")
            return out
    if not st.approved:
        ready_at = parse(st.preview_ready_at)
        assert ready_at is not None
        if not bg.auto_promotion_enabled:
            w.pause(BLUE_GREEN_PAUSE, ctx.now)
            out.message = f"preview {preview} ready: waiting for promote"
            return out
        if bg.auto_promotion_seconds is not None and ctx.now < ready_at + span(bg.auto_promotion_seconds):
            at = ready_at + span(bg.auto_promotion_seconds)
            out.wake.append(at)
            out.message = f"preview {preview} ready: promoting automatically at {stamp(at)}"
            return out
        st = _set(w, approved=True)
        w.stage = PROMOTING
        out.replicas[preview] = n
    blocked = base.hold_reason(w)
    if blocked is not None:
        out.message = f"preview {preview} approved, not switched: {blocked}"
        return out
    # The switch is atomic and happens only when every replica of the preview is available.
    if not ctx.fully_ready(preview, n):
        out.waiting = True
        out.message = f"promoting {preview}: {ctx.available(preview)} of {n} replicas available before the switch"
        return out
    _set(w, switched_at=stamp(ctx.now), active_revision=preview)
    w.stage = SWITCHED
    return None


def _post(w: Work, ctx: Ctx, bg: BlueGreenStrategy) -> Outcome | None:
    """After the switch: post-promotion analysis decides; None once promoted."""
    old, new, n = w.stable, w.current, ctx.n
    assert old is not None and new is not None and w.blue_green is not None
    out = Outcome(replicas={old: n, new: n}, weights={new: 100}, roles={old: "stable", new: "active"})
    base.others_down(w, ctx, out)
    if bg.post_promotion_analysis is not None and not w.blue_green.skip_analysis:
        result = analysis.settle(w, ctx, analysis.track(w, ctx, out, "postPromotion", bg.post_promotion_analysis))
        if result == "failed":
            lifecycle.begin_abort(w, ctx, "AnalysisFailed", "post-promotion analysis failed")
            return _aborted(w, ctx, bg)
        if result != "passed":
            why = base.hold_reason(w) or "waiting for post-promotion analysis"
            out.message = f"switched to {new}: {why}; {old} kept up for rollback"
            return out
    if base.hold_reason(w) is not None:
        out.message = f"switched to {new}: {base.hold_reason(w)}"
        return out
    lifecycle.promote(w, ctx, scale_down_delay=float(bg.scale_down_delay_seconds))
    return None


def _aborted(w: Work, ctx: Ctx, bg: BlueGreenStrategy) -> Outcome:
    """Back to the former active revision — a rollback if the switch had happened. The aborted
    revision stays up for abortScaleDownDelaySeconds after the abort (the abort's time is in the
    status, so the deadline survives a restart); 0 keeps it up until retry, undo or a new spec."""
    assert w.abort is not None and w.blue_green is not None and w.current is not None
    if w.blue_green.switched_at is not None and w.stable is not None:
        lifecycle.complete(
            w, ctx, "rolledBack", w.stable, f"{w.abort.message}: switched back to {w.stable}", w.update_started_at
        )
    if w.blue_green.active_revision != w.stable or w.blue_green.switched_at is not None:
        _set(w, active_revision=w.stable, switched_at=None)
    out = base.rolled_back(w, ctx)
    if w.stable is not None:
        out.roles[w.stable] = "active"
        base.keep_aborted_up(w, ctx, out, bg.abort_scale_down_delay_seconds)
    return out
