"""Revisions: each immutable workload version of a rollout, by content hash, with its template so
that an old revision can be started again after the spec moved on (undo).

Numbers follow `kubectl rollout history`, as the engine's own history does: a new revision gets the
next number, and re-recording an older one (an undo) moves it to the next number too. Numbers come
from a counter on the rollout row, so they keep rising after old revisions are pruned."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from rollwise.platforms.local.store import codec, rollouts
from rollwise.platforms.local.store.records import RevisionRecord

_COLUMNS = "rollout, hash, number, template_json, created_at"


def record(
    conn: sqlite3.Connection, rollout: str, hash: str, template: Mapping[str, Any] | str, now: datetime
) -> RevisionRecord:
    rollouts.require(conn, rollout)
    template_json = codec.canonical_object(template, "the revision template")
    (top,) = conn.execute("SELECT last_revision_number FROM rollouts WHERE name = ?", (rollout,)).fetchone()
    existing = get(conn, rollout, hash)
    if existing is not None:
        if existing.template_json != template_json:
            # The hash names the content; two contents under one name means the caller hashed wrongly.
            raise ValueError(f"revision {hash} of rollout {rollout!r} is already recorded with another template")
        if existing.number == top:
            return existing
    number = top + 1
    conn.execute("UPDATE rollouts SET last_revision_number = ? WHERE name = ?", (number, rollout))
    if existing is None:
        conn.execute(
            "INSERT INTO revisions (rollout, hash, number, template_json, created_at) VALUES (?, ?, ?, ?, ?)",
            (rollout, hash, number, template_json, codec.stamp(now)),
        )
    else:
        conn.execute("UPDATE revisions SET number = ? WHERE rollout = ? AND hash = ?", (number, rollout, hash))
    found = get(conn, rollout, hash)
    assert found is not None
    return found


def get(conn: sqlite3.Connection, rollout: str, hash: str) -> RevisionRecord | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM revisions WHERE rollout = ? AND hash = ?", (rollout, hash)).fetchone()
    return None if row is None else _record(row)


def by_number(conn: sqlite3.Connection, rollout: str, number: int) -> RevisionRecord | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM revisions WHERE rollout = ? AND number = ?", (rollout, number)
    ).fetchone()
    return None if row is None else _record(row)


def list_for(conn: sqlite3.Connection, rollout: str) -> list[RevisionRecord]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM revisions WHERE rollout = ? ORDER BY number", (rollout,))
    return [_record(row) for row in rows]


def prune(conn: sqlite3.Connection, rollout: str, keep: Collection[str]) -> int:
    """Delete the revisions of `rollout` not in `keep` (the engine decides which history to keep)."""
    doomed = [r.hash for r in list_for(conn, rollout) if r.hash not in set(keep)]
    conn.executemany("DELETE FROM revisions WHERE rollout = ? AND hash = ?", [(rollout, h) for h in doomed])
    return len(doomed)


def _record(row: tuple[Any, ...]) -> RevisionRecord:
    rollout, hash, number, template_json, created = row
    return RevisionRecord(
        rollout=rollout, hash=hash, number=number, template_json=template_json, created_at=codec.parse(created)
    )
