"""The small JSONPath subset used to ignore volatile fields when comparing mirrored responses:
`$`, `.name`, `['name']`, `[N]`, `[*]` and `.*` (e.g. `$.timestamp`, `$.items[*].id`).

Ignoring a path removes the key from objects; in arrays it blanks the element to None instead of
removing it, so that later positions still line up between the two bodies being compared."""

from __future__ import annotations

import re
from typing import Any

Segment = str | int | None  # a key, an index, or None for the wildcard

_TOKEN = re.compile(
    r"""\.(?P<name>[A-Za-z_$@-][\w$@-]*)|\.\*|\[\*\]|\[(?P<index>-?\d+)\]|\[(?P<q>['"])(?P<key>.*?)(?P=q)\]"""
)


class JsonPathError(ValueError):
    pass


def parse_path(path: str) -> tuple[Segment, ...]:
    if not path.startswith("$"):
        raise JsonPathError("must start with $")
    segments: list[Segment] = []
    pos = 1
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if m is None:
            raise JsonPathError(f"cannot read {path[pos:]!r} (use .name, ['name'], [N] or [*])")
        if m.group("name") is not None:
            segments.append(m.group("name"))
        elif m.group("index") is not None:
            segments.append(int(m.group("index")))
        elif m.group("key") is not None:
            segments.append(m.group("key"))
        else:
            segments.append(None)
        pos = m.end()
    if not segments:
        raise JsonPathError("ignoring $ would ignore the whole body")
    return tuple(segments)


def remove_path(doc: Any, segments: tuple[Segment, ...]) -> None:
    """Remove (in place) every value `segments` selects in `doc`; absent paths are no-ops."""
    head, rest = segments[0], segments[1:]
    if isinstance(doc, dict):
        keys = list(doc) if head is None else [head] if isinstance(head, str) and head in doc else []
        for key in keys:
            if rest:
                remove_path(doc[key], rest)
            else:
                del doc[key]
    elif isinstance(doc, list):
        if head is None:
            indexes = range(len(doc))
        elif isinstance(head, int) and -len(doc) <= head < len(doc):
            indexes = range(head % len(doc), head % len(doc) + 1)
        else:
            return
        for i in indexes:
            if rest:
                remove_path(doc[i], rest)
            else:
                doc[i] = None
