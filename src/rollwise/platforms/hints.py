"""What to tell a user whose request changed nothing, on either platform."""

from __future__ import annotations

from rollwise.spec.status import RolloutStatus


def unchanged_hint(name: str, status: RolloutStatus | None) -> str | None:
    """Why applying the same spec again starts nothing, when that is surprising: the spec's revision
    was set aside by an undo, or aborted. Says what does roll it out again."""
    if status is None or status.spec_revision is None:
        return None
    undo = status.undo
    if undo is not None and undo.spec_revision == status.spec_revision:
        number = next((r.number for r in status.history or [] if r.revision == status.spec_revision), None)
        again = f"`rollwise undo {name} --to-revision {number}`" if number is not None else "a changed spec"
        return (
            f"rollout/{name}: the spec still describes revision {status.spec_revision}, which an undo set "
            f"aside (revision {undo.revision} runs); {again} rolls it out again"
        )
    if status.aborted and status.current_revision == status.spec_revision:
        return (
            f"rollout/{name}: the spec describes revision {status.spec_revision}, which was aborted; "
            f"`rollwise retry {name}` rolls it out again"
        )
    return None
