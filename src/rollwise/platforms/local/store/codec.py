"""How values are written to and read from columns: canonical JSON and RFC 3339 UTC timestamps."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def canonical(value: Any) -> str:
    """Sorted keys and no spaces, so that equal documents have equal text and a spec change can be
    detected by comparing strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_object(value: Mapping[str, Any] | str, what: str) -> str:
    """A JSON object given as a mapping or as JSON text, in canonical form."""
    parsed = json.loads(value) if isinstance(value, str) else dict(value)
    if not isinstance(parsed, dict):
        raise ValueError(f"{what} must be a JSON object, got {type(parsed).__name__}")
    return canonical(parsed)


def optional_json(value: Any) -> str | None:
    return None if value is None else canonical(value)


def load_optional(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def stamp(t: datetime) -> str:
    """Fixed width (always microseconds, always Z), so text order is time order."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError("timestamps must be timezone-aware")
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)
