"""Time as the engine sees it: `now` is an argument (a timezone-aware datetime), and every instant
it remembers is written as an RFC 3339 UTC string with microseconds, which reads back exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rollwise.spec.common import duration_seconds


def check_now(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime (the engine never reads the clock itself)")
    return now.astimezone(UTC)


def stamp(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse(s: str | None) -> datetime | None:
    if s is None:
        return None
    return datetime.fromisoformat(s).astimezone(UTC)


def span(value: int | str | float) -> timedelta:
    """A spec duration ('30s', '5m', 90) as a timedelta."""
    seconds = float(value) if isinstance(value, float) else duration_seconds(value)
    return timedelta(seconds=seconds)


def until(now: datetime, t: datetime) -> float:
    return (t - now).total_seconds()
