"""The small JSONPath subset webhook selectors need: `$`, `.name`, `['name']`, `[index]` (negative
counts from the end) and the wildcards `[*]` / `.*`. A path with a wildcard selects a list."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_INDEX = re.compile(r"\[\s*(-?\d+)\s*\]")
_QUOTED = re.compile(r"""\[\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\s*\]""")
_WILDCARD = re.compile(r"\[\s*\*\s*\]|\.\*")

Step = str | int | None  # key, index, or None for a wildcard


class JsonPathError(ValueError):
    pass


class NoMatch(LookupError):
    """The path is valid but the document has nothing there."""


@dataclass(frozen=True)
class JsonPath:
    text: str
    steps: tuple[Step, ...]

    @property
    def has_wildcard(self) -> bool:
        return None in self.steps

    def select(self, document: Any) -> Any:
        """The selected value; a list of values when the path has a wildcard."""
        found = _walk([document], self.steps, self.text, "$")
        if self.has_wildcard:
            return found
        return found[0]


def parse(text: str) -> JsonPath:
    text = text.strip()
    if not text.startswith("$"):
        raise JsonPathError(f"JSON path {text!r} must start with '$' (e.g. $.data.value)")
    pos = 1
    steps: list[Step] = []
    while pos < len(text):
        rest = text[pos:]
        if m := _WILDCARD.match(rest):
            steps.append(None)
        elif rest.startswith("."):
            name = _NAME.match(rest, 1)
            if not name:
                raise JsonPathError(f"JSON path {text!r}: expected a name after '.' at character {pos + 2}")
            steps.append(name.group(0))
            pos += name.end()
            continue
        elif m := _INDEX.match(rest):
            steps.append(int(m.group(1)))
        elif m := _QUOTED.match(rest):
            raw = m.group(1) if m.group(1) is not None else m.group(2)
            steps.append(re.sub(r"\\(.)", r"\1", raw))
        else:
            raise JsonPathError(
                f"JSON path {text!r}: unexpected {rest[0]!r} at character {pos + 1}; use .name, ['name'], [0] or [*]"
            )
        pos += m.end()
    return JsonPath(text, tuple(steps))


def _walk(values: list[Any], steps: tuple[Step, ...], text: str, where: str) -> list[Any]:
    for step in steps:
        nxt: list[Any] = []
        for value in values:
            if step is None:
                if isinstance(value, list):
                    nxt.extend(value)
                elif isinstance(value, dict):
                    nxt.extend(value.values())
            elif isinstance(step, int):
                if isinstance(value, list) and -len(value) <= step < len(value):
                    nxt.append(value[step])
            elif isinstance(value, dict) and step in value:
                nxt.append(value[step])
        where = f"{where}[*]" if step is None else (f"{where}[{step}]" if isinstance(step, int) else f"{where}.{step}")
        if not nxt and None not in steps:
            raise NoMatch(f"JSON path {text!r} matches nothing: the document has no {where}")
        values = nxt
    return values
