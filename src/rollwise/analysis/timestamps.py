"""RFC 3339 timestamps as the status stores them (UTC, 'Z', milliseconds)."""

from __future__ import annotations

from datetime import UTC, datetime


def format_time(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError(f"timestamps must be timezone-aware (got naive {at.isoformat()})")
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed


def utc_now() -> datetime:
    """The wall clock, for the impure edges only (providers and the measuring loop)."""
    return datetime.now(UTC)
