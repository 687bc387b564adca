"""Analysis conditions are CEL expressions; compile them at lint time so a typo is found before a
rollout depends on it."""

from __future__ import annotations

import functools

import celpy
from celpy.celparser import CELParseError


@functools.cache
def _environment() -> celpy.Environment:
    return celpy.Environment()


def compile_error(expression: str) -> str | None:
    """None when `expression` compiles; otherwise the parser's complaint, caret line included."""
    if not expression.strip():
        return "empty expression"
    try:
        _environment().compile(expression)
    except CELParseError as exc:
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        caret = next((ln for ln in lines if ln.strip() == "^"), None)
        where = f" at character {caret.index('^') + 1}" if caret else ""
        return f"invalid CEL expression{where}: {expression!r}"
    except Exception as exc:  # the CEL package raises its own error types for semantic faults
        return f"invalid CEL expression: {exc}"
    return None
