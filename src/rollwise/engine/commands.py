"""User commands. Each either changes the memory (so that its effect survives in the status) or
is refused with a reason; either way `status.lastCommand` says what happened."""

from __future__ import annotations

from rollwise.engine import analysis, lifecycle
from rollwise.engine.clock import stamp
from rollwise.engine.plan import Command
from rollwise.engine.work import (
    BLUE_GREEN_PAUSE,
    FROZEN_PAUSE,
    ROUTER_PAUSE,
    SPEC_PAUSE,
    STEP_PAUSE,
    UNSURE_PAUSES,
    USER_PAUSE,
    Ctx,
    Work,
)
from rollwise.spec.status import AbortMode, BlueGreenStatus, CommandRecord, UndoState


def apply(w: Work, ctx: Ctx, command: Command) -> None:
    if command.verb == "hold":
        w.pause(ROUTER_PAUSE, ctx.now)  # the platform's: `lastCommand` stays the user's
        return
    handlers = {
        "pause": _pause,
        "resume": _resume,
        "abort": _abort,
        "retry": _retry,
        "promote": _promote,
        "promoteFull": _promote,
        "undo": _undo,
    }
    accepted, message = handlers[command.verb](w, ctx, command)
    w.last_command = CommandRecord(command=str(command), at=stamp(ctx.now), accepted=accepted, message=message)


def abort_mode(ctx: Ctx) -> AbortMode:
    ca = ctx.spec.strategy.canary
    return ca.abort.mode if ca is not None else "instant"


def _pause(w: Work, ctx: Ctx, command: Command) -> tuple[bool, str]:
    if USER_PAUSE in w.pauses:
        return False, "already paused"
    w.pause(USER_PAUSE, ctx.now)
    return True, "paused: nothing advances until resume"


def _resume(w: Work, ctx: Ctx, command: Command) -> tuple[bool, str]:
    done = []
    if USER_PAUSE in w.pauses:
        w.unpause(USER_PAUSE)
        done.append("unpaused")
    if ROUTER_PAUSE in w.pauses:
        w.unpause(ROUTER_PAUSE)
        done.append("the routes are tried again")
    if w.abort is not None and w.abort.mode == "freeze" and w.stable is not None:
        lifecycle.clear_abort(w)
        done.append("the frozen update continues")
    if any(r in w.pauses for r in UNSURE_PAUSES):
        analysis.rerun_unsure(w)
        w.unpause(*UNSURE_PAUSES)
        done.append("inconclusive or failed-to-run analysis runs again")
    if done:
        return True, "; ".join(done)
    if SPEC_PAUSE in w.pauses:
        return False, "spec.paused is true: set it to false to resume"
    return False, "nothing to resume"


def _abort(w: Work, ctx: Ctx, command: Command) -> tuple[bool, str]:
    if not w.updating:
        return False, "no update in progress: nothing to abort"
    if w.abort is not None:
        if w.abort.mode == "freeze" and w.stable is not None:
            w.abort = w.abort.model_copy(update={"mode": "instant"})
            w.unpause(FROZEN_PAUSE)
            return True, "the frozen update is rolled back"
        return False, "already aborted"
    lifecycle.begin_abort(w, ctx, "UserAbort", "aborted by a user", abort_mode(ctx))
    return True, "aborted"


def _retry(w: Work, ctx: Ctx, command: Command) -> tuple[bool, str]:
    if w.abort is None or not w.updating:
        return False, "not aborted: nothing to retry"
    lifecycle.clear_abort(w)
    lifecycle.reset_update(w, ctx.now)
    w.attempt += 1
    w.update_started_at = ctx.now
    w.downtime = None
    return True, f"retrying the update to {w.current} from the first step"


def _promote(w: Work, ctx: Ctx, command: Command) -> tuple[bool, str]:
    if not w.updating:
        return False, "no update in progress: nothing to promote"
    if w.abort is not None:
        if w.abort.mode == "freeze":
            return False, "aborted and frozen: resume to continue, retry to start over, abort to roll back"
        return False, "aborted: retry to start over"
    if SPEC_PAUSE in w.pauses:
        return False, "spec.paused is true: set it to false first"
    w.unpause(USER_PAUSE, ROUTER_PAUSE, STEP_PAUSE, BLUE_GREEN_PAUSE, *UNSURE_PAUSES)
    analysis.accept_unsure(w)
    full = command.verb == "promoteFull"
    ctx.promote = "full" if full else "step"
    return (
        True,
        "promoting in full, skipping remaining steps and analysis" if full else "promoted past the current step",
    )


def _undo(w: Work, ctx: Ctx, command: Command) -> tuple[bool, str]:
    assert w.spec_revision is not None
    if command.to_revision is None:
        if w.updating and w.stable is not None:
            revision = w.stable
        else:
            earlier = sorted((r for r in w.history if r.revision != w.current), key=lambda r: -r.number)
            if not earlier:
                return False, "no earlier revision to undo to"
            revision = earlier[0].revision
    else:
        record = next((r for r in w.history if r.number == command.to_revision), None)
        if record is None:
            kept = ", ".join(str(r.number) for r in w.history) or "none"
            return False, f"no revision {command.to_revision} in history (kept: {kept})"
        revision = record.revision
    if revision == w.current:
        return False, f"revision {revision} is already the one being run"
    fast = (revision == w.stable or revision in lifecycle.kept_up(w, ctx.now)) and ctx.fully_ready(revision, ctx.n)
    leaving = w.current
    lifecycle.retarget(w, ctx, revision, result="fastTracked" if fast else "rolledBack")
    record = w.record(revision)
    assert record is not None
    w.undo = (
        None
        if revision == w.spec_revision
        else UndoState(revision=revision, number=record.number, spec_revision=w.spec_revision)
    )
    if not fast:
        return True, f"undo: rolling out revision {revision} (now number {record.number})"
    # Still scaled up and ready: it takes the traffic back in this very plan.
    if w.stable != revision:
        w.stable = revision
        lifecycle.reset_update(w, ctx.now)
        w.update_started_at = None
    lifecycle.set_scale_down(w, revision, None)
    if w.blue_green is not None:
        w.blue_green = BlueGreenStatus(active_revision=revision)
    message = f"undo fast-tracked: {revision} was still scaled up and took all traffic from {leaving} at once"
    lifecycle.complete(w, ctx, "fastTracked", revision, message)
    return True, message
