"""Analysis runs of a rollout and their measurements, for `status` and the dashboard. The engine
keeps what it decides on in the run's status; this is the longer record a person reads.

Both are bounded: measurements per metric of a run, and runs per rollout (a run's measurements go
with it)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rollwise.platforms.local.store import codec, rollouts
from rollwise.platforms.local.store.records import AnalysisRunRecord, MeasurementRecord

_RUN_SELECT = "SELECT rollout, name, phase, message, created_at, updated_at FROM analysis_runs"


def set_run(
    conn: sqlite3.Connection, rollout: str, run: str, phase: str, message: str | None, now: datetime, keep_runs: int
) -> AnalysisRunRecord:
    ensure_run(conn, rollout, run, phase, now, keep_runs)
    conn.execute(
        "UPDATE analysis_runs SET phase = ?, message = ?, updated_at = ? WHERE rollout = ? AND name = ?",
        (phase, message, codec.stamp(now), rollout, run),
    )
    found = get_run(conn, rollout, run)
    assert found is not None
    return found


def ensure_run(conn: sqlite3.Connection, rollout: str, run: str, phase: str, now: datetime, keep_runs: int) -> int:
    """The run's row id, creating the run (and pruning the oldest beyond `keep_runs`) if new."""
    row = conn.execute("SELECT id FROM analysis_runs WHERE rollout = ? AND name = ?", (rollout, run)).fetchone()
    if row is not None:
        return int(row[0])
    rollouts.require(conn, rollout)
    stamp = codec.stamp(now)
    cursor = conn.execute(
        "INSERT INTO analysis_runs (rollout, name, phase, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        (rollout, run, phase, stamp, stamp),
    )
    conn.execute(
        "DELETE FROM analysis_runs WHERE rollout = ? AND id <= "
        "(SELECT id FROM analysis_runs WHERE rollout = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
        (rollout, rollout, keep_runs),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def save_state(
    conn: sqlite3.Connection,
    rollout: str,
    run: str,
    phase: str,
    message: str | None,
    state: Mapping[str, Any],
    now: datetime,
    keep_runs: int,
) -> None:
    """The run's phase and message, with what a restarted control plane needs to resume it."""
    ensure_run(conn, rollout, run, phase, now, keep_runs)
    conn.execute(
        "UPDATE analysis_runs SET phase = ?, message = ?, state_json = ?, updated_at = ?"
        " WHERE rollout = ? AND name = ?",
        (phase, message, codec.canonical(dict(state)), codec.stamp(now), rollout, run),
    )


def load_state(conn: sqlite3.Connection, rollout: str, run: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT state_json FROM analysis_runs WHERE rollout = ? AND name = ?", (rollout, run)).fetchone()
    if row is None or row[0] is None:
        return None
    value: dict[str, Any] = json.loads(row[0])
    return value


def get_run(conn: sqlite3.Connection, rollout: str, run: str) -> AnalysisRunRecord | None:
    row = conn.execute(f"{_RUN_SELECT} WHERE rollout = ? AND name = ?", (rollout, run)).fetchone()
    return None if row is None else _run(row)


def runs(conn: sqlite3.Connection, rollout: str) -> list[AnalysisRunRecord]:
    rows = conn.execute(f"{_RUN_SELECT} WHERE rollout = ? ORDER BY id", (rollout,))
    return [_run(row) for row in rows]


def add_measurement(
    conn: sqlite3.Connection,
    rollout: str,
    run: str,
    metric: str,
    phase: str,
    value: str | None,
    message: str | None,
    ts: datetime,
    keep: int,
    keep_runs: int,
) -> MeasurementRecord:
    run_id = ensure_run(conn, rollout, run, "Running", ts, keep_runs)
    stamp = codec.stamp(ts)
    cursor = conn.execute(
        "INSERT INTO measurements (run_id, metric, ts, phase, value, message) VALUES (?, ?, ?, ?, ?, ?)",
        (run_id, metric, stamp, phase, value, message),
    )
    conn.execute(
        "DELETE FROM measurements WHERE run_id = ? AND metric = ? AND id <= "
        "(SELECT id FROM measurements WHERE run_id = ? AND metric = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
        (run_id, metric, run_id, metric, keep),
    )
    assert cursor.lastrowid is not None
    return MeasurementRecord(
        id=cursor.lastrowid,
        rollout=rollout,
        run=run,
        metric=metric,
        ts=codec.parse(stamp),
        phase=phase,
        value=value,
        message=message,
    )


def measurements(
    conn: sqlite3.Connection, rollout: str, run: str | None, metric: str | None, limit: int | None
) -> list[MeasurementRecord]:
    """The newest `limit` measurements matching, oldest first."""
    where = ["r.rollout = ?"]
    params: list[Any] = [rollout]
    if run is not None:
        where.append("r.name = ?")
        params.append(run)
    if metric is not None:
        where.append("m.metric = ?")
        params.append(metric)
    params.append(limit if limit is not None else -1)
    rows = conn.execute(
        "SELECT m.id, r.rollout, r.name, m.metric, m.ts, m.phase, m.value, m.message"
        " FROM measurements m JOIN analysis_runs r ON r.id = m.run_id"
        f" WHERE {' AND '.join(where)} ORDER BY m.id DESC LIMIT ?",
        params,
    ).fetchall()
    return [_measurement(row) for row in reversed(rows)]


def _run(row: tuple[Any, ...]) -> AnalysisRunRecord:
    rollout, name, phase, message, created, updated = row
    return AnalysisRunRecord(
        rollout=rollout,
        name=name,
        phase=phase,
        message=message,
        created_at=codec.parse(created),
        updated_at=codec.parse(updated),
    )


def _measurement(row: tuple[Any, ...]) -> MeasurementRecord:
    id, rollout, run, metric, ts, phase, value, message = row
    return MeasurementRecord(
        id=id, rollout=rollout, run=run, metric=metric, ts=codec.parse(ts), phase=phase, value=value, message=message
    )
