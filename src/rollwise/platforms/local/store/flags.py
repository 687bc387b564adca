"""Who changed which feature flag from what to what, and with which command: the audit trail of the
feature-flags issue, bounded per flag set."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from rollwise.platforms.local.store import codec
from rollwise.platforms.local.store.records import FlagChange


def record(
    conn: sqlite3.Connection, flagset: str, flag: str, old: Any, new: Any, command: str, ts: datetime, keep: int
) -> FlagChange:
    stamp = codec.stamp(ts)
    old_json, new_json = codec.optional_json(old), codec.optional_json(new)
    cursor = conn.execute(
        "INSERT INTO flag_history (ts, flagset, flag, old_json, new_json, command) VALUES (?, ?, ?, ?, ?, ?)",
        (stamp, flagset, flag, old_json, new_json, command),
    )
    conn.execute(
        "DELETE FROM flag_history WHERE flagset = ? AND id <= "
        "(SELECT id FROM flag_history WHERE flagset = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
        (flagset, flagset, keep),
    )
    assert cursor.lastrowid is not None
    # Read back through the codec so the caller gets what a later reader will get.
    return FlagChange(
        id=cursor.lastrowid,
        ts=codec.parse(stamp),
        flagset=flagset,
        flag=flag,
        old=codec.load_optional(old_json),
        new=codec.load_optional(new_json),
        command=command,
    )


def history(conn: sqlite3.Connection, flagset: str | None, flag: str | None, limit: int | None) -> list[FlagChange]:
    """The newest `limit` changes matching, oldest first."""
    where, params = [], []
    if flagset is not None:
        where.append("flagset = ?")
        params.append(flagset)
    if flag is not None:
        where.append("flag = ?")
        params.append(flag)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = conn.execute(
        f"SELECT id, ts, flagset, flag, old_json, new_json, command FROM flag_history{clause} ORDER BY id DESC LIMIT ?",
        [*params, limit if limit is not None else -1],
    ).fetchall()
    return [
        FlagChange(
            id=id,
            ts=codec.parse(ts),
            flagset=fs,
            flag=fl,
            old=codec.load_optional(old),
            new=codec.load_optional(new),
            command=command,
        )
        for id, ts, fs, fl, old, new, command in reversed(rows)
    ]
