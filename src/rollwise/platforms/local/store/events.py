"""Events about a rollout, newest kept: the oldest beyond the retention are deleted by the same
transaction that adds one."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any, get_args

from rollwise.platforms.local.store import codec, rollouts
from rollwise.platforms.local.store.records import EventRecord, EventType

_TYPES = frozenset(get_args(EventType))


def add(
    conn: sqlite3.Connection, rollout: str, type: EventType, reason: str, message: str, ts: datetime, keep: int
) -> EventRecord:
    if type not in _TYPES:
        raise ValueError(f"event type must be one of {sorted(_TYPES)}, got {type!r}")
    rollouts.require(conn, rollout)
    stamp = codec.stamp(ts)
    cursor = conn.execute(
        "INSERT INTO events (rollout, ts, type, reason, message) VALUES (?, ?, ?, ?, ?)",
        (rollout, stamp, type, reason, message),
    )
    assert cursor.lastrowid is not None
    prune(conn, rollout, keep)
    return EventRecord(
        id=cursor.lastrowid, ts=codec.parse(stamp), rollout=rollout, type=type, reason=reason, message=message
    )


def prune(conn: sqlite3.Connection, rollout: str, keep: int) -> None:
    conn.execute(
        "DELETE FROM events WHERE rollout = ? AND id <= "
        "(SELECT id FROM events WHERE rollout = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
        (rollout, rollout, keep),
    )


def list_for(conn: sqlite3.Connection, rollout: str, limit: int | None, after: int | None) -> list[EventRecord]:
    """Oldest first. Without `after`: the newest `limit` events. With it: the first `limit` events
    after that id, so a watcher that pages with the last id it saw never skips one."""
    columns = "SELECT id, ts, rollout, type, reason, message FROM events"
    bound = limit if limit is not None else -1
    if after is None:
        rows = conn.execute(f"{columns} WHERE rollout = ? ORDER BY id DESC LIMIT ?", (rollout, bound)).fetchall()
        rows.reverse()
    else:
        rows = conn.execute(
            f"{columns} WHERE rollout = ? AND id > ? ORDER BY id LIMIT ?", (rollout, after, bound)
        ).fetchall()
    return [_record(row) for row in rows]


def _record(row: tuple[Any, ...]) -> EventRecord:
    id, ts, rollout, type, reason, message = row
    return EventRecord(id=id, ts=codec.parse(ts), rollout=rollout, type=type, reason=reason, message=message)
