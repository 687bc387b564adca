"""Replica processes the supervisor started, so that a restarted control plane finds (and adopts or
reaps) the processes it left running instead of starting duplicates beside them."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from rollwise.platforms.local.store import codec
from rollwise.platforms.local.store.records import ReplicaRecord


def save(conn: sqlite3.Connection, record: ReplicaRecord, now: datetime) -> None:
    conn.execute(
        "INSERT INTO replicas (rollout, revision, idx, pid, port, started_ticks, restarts, extra_json, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (rollout, revision, idx) DO UPDATE SET pid = excluded.pid, port = excluded.port,"
        " started_ticks = excluded.started_ticks, restarts = excluded.restarts, extra_json = excluded.extra_json,"
        " updated_at = excluded.updated_at",
        (
            record.rollout,
            record.revision,
            record.index,
            record.pid,
            record.port,
            record.started_ticks,
            record.restarts,
            codec.canonical_object(record.extra, "a replica record's extra"),
            codec.stamp(now),
        ),
    )


def delete(conn: sqlite3.Connection, rollout: str, revision: str, index: int) -> bool:
    cursor = conn.execute(
        "DELETE FROM replicas WHERE rollout = ? AND revision = ? AND idx = ?", (rollout, revision, index)
    )
    return cursor.rowcount > 0


def list_all(conn: sqlite3.Connection) -> list[ReplicaRecord]:
    rows = conn.execute(
        "SELECT rollout, revision, idx, pid, port, started_ticks, restarts, extra_json FROM replicas"
        " ORDER BY rollout, revision, idx"
    )
    return [
        ReplicaRecord(rollout, revision, index, pid, port, ticks, restarts, json.loads(extra))
        for rollout, revision, index, pid, port, ticks, restarts, extra in rows
    ]
