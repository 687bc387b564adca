"""A canary weighted dynamically: one decision per interval, taken by a WeightPolicy (see
dynamic.py) from that interval's analysis verdict; replicas, routes and aborts as for steps."""

from __future__ import annotations

from rollwise.engine import analysis, base
from rollwise.engine.analysis import Judge
from rollwise.engine.canary_abort import abort, aborted
from rollwise.engine.canary_layout import finish, layout, replica_wait
from rollwise.engine.canary_steps import background, held, watch
from rollwise.engine.clock import parse, span, stamp
from rollwise.engine.dynamic import PolicyState, VelocityPolicy
from rollwise.engine.outcome import Outcome
from rollwise.engine.steps import Shape, Track, sized
from rollwise.engine.work import Ctx, Work
from rollwise.spec.status import DynamicStatus
from rollwise.spec.strategies.canary import CanaryStrategy

# A raise or a hold ends each pass; this bounds the loop generously.
_PASSES = 4


def run_dynamic(w: Work, ctx: Ctx, track: Track, ca: CanaryStrategy) -> Outcome | None:
    """One decision per interval, taken by the policy from that interval's judgement (a run of
    the statistical judge); `dynamic.analysis` and `canary.analysis` watch alongside as gates."""
    if w.abort is not None:
        return aborted(w, ctx, track)
    dyn = ca.dynamic
    assert dyn is not None
    policy = VelocityPolicy.from_spec(dyn)
    if w.dynamic is None:
        start = policy.start()
        w.dynamic = DynamicStatus(weight=start.weight, step_weight=start.step_weight)
    if ctx.promote == "full":
        ctx.promote = None
        # Remembered as the weight reached, so that the promotion survives a restart.
        w.dynamic = w.dynamic.model_copy(update={"weight": policy.max_weight, "last_decision": "promote --full"})
    interval = span(dyn.interval)
    for _ in range(_PASSES):
        d = w.dynamic
        if d.weight >= policy.max_weight:
            return finish(w, ctx, track)
        w.step = d.interval
        out, ready = layout(w, ctx, track, Shape(weight=d.weight, replicas=sized(ctx.n, d.weight)))
        label = f"dynamic weight {d.weight}% (interval {d.interval + 1})"
        stopped = background(w, ctx, track, out, 0)
        if not stopped and dyn.analysis is not None:
            stopped = watch(w, ctx, out, "gate", dyn.analysis)
        if stopped:
            return aborted(w, ctx, track) if w.abort is not None else held(out, label, base.hold_reason(w) or "")
        if not ready:
            out.message = f"{label}: {replica_wait(ctx, w, out)}"
            return out
        started = parse(d.interval_started_at)
        if started is None:
            started = ctx.now
            w.dynamic = d = d.model_copy(update={"interval_started_at": stamp(started)})
        # The interval's judgement: the statistical judge compares the canary with stable.
        state = analysis.track(w, ctx, out, "dynamic", None, step=d.interval, judge=Judge(dynamic=dyn))
        record = analysis.find(w, "dynamic", d.interval)
        verdict = record.verdict if record is not None else None
        if state == "failed":
            # Evidence of harm ends the rollout at once, mid-interval.
            abort(w, ctx, "AnalysisFailed", f"{label}: evidence of harm")
            return aborted(w, ctx, track)
        if ctx.promote == "step":
            ctx.promote = None
            verdict = "Successful"
        elif base.hold_reason(w) is not None:
            return held(out, label, base.hold_reason(w) or "")
        elif ctx.now < started + interval:
            out.wake.append(started + interval)
            out.message = f"{label}: observing until {stamp(started + interval)}"
            return out
        elif state == "running":
            out.message = f"{label}: waiting for the interval's verdict"
            return out
        decision = policy.decide(PolicyState(d.weight, d.step_weight, d.raises), verdict)
        if decision.action == "abort":
            abort(w, ctx, "AnalysisFailed", decision.reason)
            return aborted(w, ctx, track)
        s = decision.state
        w.dynamic = DynamicStatus(
            weight=s.weight,
            step_weight=s.step_weight,
            raises=s.raises,
            interval=d.interval + 1,
            # A hold observes the same weight again from now; a raise waits for its replicas first.
            interval_started_at=stamp(ctx.now) if decision.action == "hold" else None,
            last_decision=decision.reason,
        )
    out.message = f"dynamic weight {w.dynamic.weight}%: deciding"
    return out
