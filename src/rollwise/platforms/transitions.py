"""The events a new status is worth: what changed since the last one, in words a person reads in
`rollwise status` and `kubectl describe rollout`. Both platforms record these for every status they
write (the local control plane in its store, the Kubernetes controller as core v1 Events), so a
transition reads the same on either. Pure: statuses in, (type, reason, message) out."""

from __future__ import annotations

from typing import Literal

from rollwise.engine.simulate import steps_at
from rollwise.engine.steps import describe
from rollwise.spec.rollout import Rollout
from rollwise.spec.status import RolloutStatus

EventType = Literal["Normal", "Warning"]
Event = tuple[EventType, str, str]

_COMPLETION_REASON = {
    "promoted": "Promoted",
    "aborted": "Aborted",
    "rolledBack": "RolledBack",
    "fastTracked": "FastTracked",
}


def weights_text(status: RolloutStatus) -> str:
    return ", ".join(f"{w.revision} {w.weight}%" for w in status.weights or []) or "none (nothing can serve)"


def changes(rollout: Rollout, old: RolloutStatus | None, new: RolloutStatus) -> list[Event]:
    old = old or RolloutStatus()
    out: list[Event] = []
    if new.current_revision and new.current_revision != old.current_revision:
        out.append(("Normal", "NewRevision", f"rolling out revision {new.current_revision}"))
    if new.last_command is not None and new.last_command != old.last_command:
        c = new.last_command
        out.append(("Normal" if c.accepted else "Warning", "Command", f"{c.command}: {c.message}"))
    if new.current_step_index is not None and (
        new.current_step_index != old.current_step_index or new.current_revision != old.current_revision
    ):
        steps = steps_at(rollout, new.stage)
        i = new.current_step_index
        if i < len(steps):
            out.append(("Normal", "Step", f"step {i + 1}/{len(steps)}: {describe(steps[i])}"))
        elif steps:
            out.append(("Normal", "Step", f"all {len(steps)} steps done: promoting"))
        # Without steps (a dynamic canary counts its intervals in the step index) the Weights and
        # completion events say what happened; "all 0 steps done" at every interval would not.
    if (new.weights or []) != (old.weights or []):
        out.append(("Normal", "Weights", weights_text(new)))
    if new.last_completion is not None and new.last_completion != old.last_completion:
        done = new.last_completion
        out.append(
            (
                "Warning" if done.result == "aborted" else "Normal",
                _COMPLETION_REASON[done.result],
                done.message or f"revision {done.revision}",
            )
        )
    if new.phase is not None and new.phase != old.phase:
        kind: EventType = "Warning" if new.phase in ("Aborted", "Degraded") else "Normal"
        out.append((kind, new.phase, new.message or ""))
    return out
