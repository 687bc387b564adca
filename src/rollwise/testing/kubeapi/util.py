"""Small helpers shared by the emulator's modules."""

from __future__ import annotations

from typing import Any, TypeVar, cast

T = TypeVar("T")


def json_copy(value: T) -> T:
    """A deep copy of JSON data (dicts, lists, scalars); several times faster than copy.deepcopy."""
    return cast(T, _copy(value))


def _copy(value: Any) -> Any:
    if type(value) is dict:
        return {k: _copy(v) for k, v in value.items()}
    if type(value) is list:
        return [_copy(v) for v in value]
    return value
