"""User commands as the CLI writes them: the `rollwise.dev/command` annotation, a JSON object
`{"id": "<uuid4>", "verb": "...", "toRevision": <int|null>}`. The controller hands each id to the
engine once (the id goes into status.handledCommand with the status the command produced), then
removes the annotation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import get_args

from rollwise.engine import Command
from rollwise.engine.plan import Verb
from rollwise.platforms.kubernetes.names import COMMAND_ANNOTATION

# A user's verbs: `hold` is the controller's own (its router failed), never taken from the annotation.
VERBS: tuple[str, ...] = tuple(v for v in get_args(Verb) if v != "hold")


class CommandError(Exception):
    """The annotation cannot be read; the message names the annotation and what is wrong."""


@dataclass(frozen=True)
class PendingCommand:
    id: str
    command: Command


def pending(annotations: dict[str, str] | None) -> PendingCommand | None:
    raw = (annotations or {}).get(COMMAND_ANNOTATION)
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CommandError(f"annotation {COMMAND_ANNOTATION}: not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(doc, dict):
        raise CommandError(f"annotation {COMMAND_ANNOTATION}: expected a JSON object")
    cid, verb, to = doc.get("id"), doc.get("verb"), doc.get("toRevision")
    if not isinstance(cid, str) or not cid:
        raise CommandError(f"annotation {COMMAND_ANNOTATION}: field id: expected a non-empty string")
    if verb not in VERBS:
        raise CommandError(f"annotation {COMMAND_ANNOTATION}: field verb: expected one of {', '.join(VERBS)}")
    if to is not None and (not isinstance(to, int) or isinstance(to, bool) or to < 1):
        raise CommandError(f"annotation {COMMAND_ANNOTATION}: field toRevision: expected a positive integer or null")
    return PendingCommand(cid, Command(verb=verb, to_revision=to))


def annotation(command_id: str, verb: str, to_revision: int | None = None) -> dict[str, str]:
    """The annotation a client writes (tests and the CLI's cluster client use it)."""
    body = {"id": command_id, "verb": verb, "toRevision": to_revision}
    return {COMMAND_ANNOTATION: json.dumps(body, separators=(",", ":"))}
