"""The progress deadline: while replicas are awaited, something must change (a replica becomes
available, a step passes) at least every progressDeadlineSeconds, or the rollout is Degraded —
and, with progressDeadlineAbort, aborted."""

from __future__ import annotations

from datetime import timedelta

from rollwise.engine.outcome import Outcome
from rollwise.engine.work import Ctx, Work


def mark(w: Work, ctx: Ctx, out: Outcome) -> str:
    """What counts as progress. A crash-looping revision's counts flap without progressing."""
    counts = ",".join(
        f"{r}={ctx.available(r)}/{out.replicas[r]}" for r in sorted(out.replicas) if not ctx.of(r).crash_looping
    )
    abort = w.abort.mode if w.abort is not None else "-"
    return f"{w.current}|{w.attempt}|{w.step}|{w.stage}|{abort}|{counts}"


def exceeded(w: Work, ctx: Ctx, out: Outcome) -> bool:
    if not out.waiting or w.pauses:
        # Not waiting for replicas (or paused by someone): no deadline runs.
        w.progress_since = None
        w.progress_mark = None
        return False
    m = mark(w, ctx, out)
    if m != w.progress_mark or w.progress_since is None:
        w.progress_mark = m
        w.progress_since = ctx.now
    end = w.progress_since + timedelta(seconds=ctx.spec.progress_deadline_seconds)
    if ctx.now >= end:
        return True
    out.wake.append(end)
    return False
