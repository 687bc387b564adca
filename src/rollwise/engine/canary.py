"""Canary: shift traffic to the new revision step by step (canary_steps.py) or by a dynamic
weighting policy (canary_dynamic.py), with step and background analysis and abort modes instant,
gradual and freeze (canary_abort.py)."""

from __future__ import annotations

from rollwise.engine import base
from rollwise.engine.canary_dynamic import run_dynamic
from rollwise.engine.canary_steps import run_steps
from rollwise.engine.outcome import Outcome
from rollwise.engine.steps import Track
from rollwise.engine.work import Ctx, Work


def reconcile(w: Work, ctx: Ctx) -> Outcome:
    ca = ctx.spec.strategy.canary
    assert ca is not None
    if not w.updating:
        return base.steady(w, ctx)
    track = Track.of(ca)
    if w.stable is None:
        return base.initial(w, ctx, scale_down_delay=track.scale_down_delay) or base.steady(w, ctx)
    dynamic = ca.dynamic is not None and not ca.steps
    out = run_dynamic(w, ctx, track, ca) if dynamic else run_steps(w, ctx, track)
    return out if out is not None else base.steady(w, ctx)
