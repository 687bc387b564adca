"""The life of an update, shared by every strategy: which revision to run (spec or undo), a new
update superseding the last, promotion to stable, abort, completion records and history."""

from __future__ import annotations

from datetime import datetime, timedelta

from rollwise.engine.clock import parse, stamp
from rollwise.engine.work import ENGINE_PAUSES, FROZEN_PAUSE, Ctx, Work
from rollwise.spec.status import AbortMode, AbortState, BlueGreenStatus, Completion, RevisionRecord


def choose_target(w: Work, ctx: Ctx, spec_revision: str) -> None:
    """The revision to run is the spec's, unless an undo is in force for this very spec."""
    if w.undo is not None and w.undo.spec_revision != spec_revision:
        # The spec was edited after the undo: the edit is the newer intent.
        w.undo = None
    w.spec_revision = spec_revision
    target = w.undo.revision if w.undo is not None else spec_revision
    if target != w.current:
        retarget(w, ctx, target)


def retarget(w: Work, ctx: Ctx, target: str, *, result: str = "rolledBack") -> None:
    """Start an update toward `target`, abandoning any update in progress (its revision is then
    neither stable nor current, and every strategy scales such revisions down)."""
    abandoned = w.current if w.updating else None
    touch(w, target, ctx.now)
    w.current = target
    reset_update(w, ctx.now)
    w.attempt += 1
    if target == w.stable:
        w.step = None
        w.update_started_at = None
        if abandoned is not None:
            complete(w, ctx, result, target, f"update to {abandoned} abandoned; back to stable revision {target}")
    else:
        w.update_started_at = ctx.now
        w.step = 0


def reset_update(w: Work, now: datetime) -> None:
    """Forget everything about the update in progress (steps, stages, analysis, abort)."""
    w.step = 0 if w.updating else None
    w.step_started_at = now
    w.stage = None
    w.stage_started_at = None
    w.abort = None
    w.runs = []
    w.dynamic = None
    w.canary_weight = None
    w.blue_green = BlueGreenStatus(active_revision=w.stable) if w.blue_green is not None else None
    w.unpause(*ENGINE_PAUSES)
    w.progress_since = None
    w.progress_mark = None


def promote(w: Work, ctx: Ctx, *, scale_down_delay: float, message: str = "") -> None:
    """The current revision becomes stable. The former stable one stays up for the delay."""
    assert w.current is not None
    old = w.stable
    if old is not None and old != w.current:
        set_scale_down(w, old, ctx.now + timedelta(seconds=scale_down_delay) if scale_down_delay > 0 else None)
    w.stable = w.current
    started = w.update_started_at
    complete(w, ctx, "promoted", w.current, message or f"revision {w.current} promoted to stable", started)
    w.update_started_at = None
    reset_update(w, ctx.now)
    if w.blue_green is not None:
        w.blue_green = BlueGreenStatus(active_revision=w.current)


def begin_abort(w: Work, ctx: Ctx, reason: str, message: str, mode: AbortMode = "instant") -> None:
    assert w.current is not None
    if w.stable is None:
        # Nothing to return to: hold what runs and wait for a human, whatever the mode says.
        mode = "freeze"
        message += " (no stable revision to return to)"
    w.abort = AbortState(revision=w.current, reason=reason, message=message, mode=mode, at=stamp(ctx.now))
    w.unpause(*ENGINE_PAUSES)
    if mode == "freeze":
        w.pause(FROZEN_PAUSE, ctx.now)
    complete(w, ctx, "aborted", w.current, message, w.update_started_at)


def clear_abort(w: Work) -> None:
    w.abort = None
    w.unpause(FROZEN_PAUSE)


def complete(w: Work, ctx: Ctx, result: str, revision: str, message: str, started: datetime | None = None) -> None:
    w.completion = Completion(
        result=result,  # type: ignore[arg-type]
        revision=revision,
        started_at=stamp(started) if started is not None else None,
        finished_at=stamp(ctx.now),
        message=message,
    )


# --- history --------------------------------------------------------------------------------------


def touch(w: Work, revision: str, now: datetime) -> None:
    """Number `revision` as the newest, as Kubernetes does when an old revision is re-applied."""
    top = max((r.number for r in w.history), default=0)
    record = w.record(revision)
    if record is not None and record.number == top:
        return
    created = record.created_at if record is not None else stamp(now)
    w.history = [r for r in w.history if r.revision != revision]
    w.history.append(RevisionRecord(revision=revision, number=top + 1, created_at=created))


def set_scale_down(w: Work, revision: str, at: datetime | None) -> None:
    w.history = [
        r.model_copy(update={"scale_down_at": stamp(at) if at is not None else None}) if r.revision == revision else r
        for r in w.history
    ]


def kept_up(w: Work, now: datetime) -> list[str]:
    """Former stable revisions still inside their scale-down delay."""
    out = []
    for r in w.history:
        at = parse(r.scale_down_at)
        if at is not None and at > now and r.revision not in (w.stable, w.current):
            out.append(r.revision)
    return out


def scale_down_times(w: Work, now: datetime) -> list[datetime]:
    times = []
    for r in w.history:
        at = parse(r.scale_down_at)
        if at is not None and at > now:
            times.append(at)
    return times


def prune(w: Work, now: datetime, limit: int, running: set[str]) -> list[str]:
    """Keep every revision in use plus the `limit` newest others; return the names kept."""
    live = {w.stable, w.current} | running | set(kept_up(w, now))
    if w.undo is not None:
        live.add(w.undo.revision)
    others = sorted((r for r in w.history if r.revision not in live), key=lambda r: -r.number)
    dropped = {r.revision for r in others[limit:]}
    cleaned = []
    for r in w.history:
        if r.revision in dropped:
            continue
        at = parse(r.scale_down_at)
        if at is not None and at <= now:
            r = r.model_copy(update={"scale_down_at": None})
        cleaned.append(r)
    w.history = sorted(cleaned, key=lambda r: r.number)
    return [r.revision for r in w.history]
