"""Resources other than rollouts (AnalysisTemplates, ClusterAnalysisTemplates, FlagSets), as
applied. Rollouts refer to them by name when a run starts, so they are kept whole, like rollouts,
with a generation that grows only when the spec changes."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rollwise.platforms.local.store import codec
from rollwise.platforms.local.store.records import ApplyResult, ResourceRecord

_COLUMNS = "kind, namespace, name, spec_json, spec_yaml, generation, created_at, updated_at"


def apply(
    conn: sqlite3.Connection,
    kind: str,
    namespace: str,
    name: str,
    spec: Mapping[str, Any] | str,
    yaml_text: str,
    now: datetime,
) -> ApplyResult:
    spec_json = codec.canonical_object(spec, f"the {kind} spec")
    stamp = codec.stamp(now)
    row = conn.execute(
        "SELECT spec_json, spec_yaml, generation FROM resources WHERE kind = ? AND namespace = ? AND name = ?",
        (kind, namespace, name),
    ).fetchone()
    if row is None:
        conn.execute(
            f"INSERT INTO resources ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
            (kind, namespace, name, spec_json, yaml_text, stamp, stamp),
        )
        return ApplyResult(1, True)
    old_spec, old_yaml, generation = row
    changed = old_spec != spec_json
    if not changed and old_yaml == yaml_text:
        return ApplyResult(generation, False)
    generation += 1 if changed else 0
    conn.execute(
        "UPDATE resources SET spec_json = ?, spec_yaml = ?, generation = ?, updated_at = ?"
        " WHERE kind = ? AND namespace = ? AND name = ?",
        (spec_json, yaml_text, generation, stamp, kind, namespace, name),
    )
    return ApplyResult(generation, changed)


def get(conn: sqlite3.Connection, kind: str, namespace: str, name: str) -> ResourceRecord | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM resources WHERE kind = ? AND namespace = ? AND name = ?", (kind, namespace, name)
    ).fetchone()
    return None if row is None else _record(row)


def list_all(conn: sqlite3.Connection, kind: str | None) -> list[ResourceRecord]:
    if kind is None:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM resources ORDER BY kind, namespace, name")
    else:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM resources WHERE kind = ? ORDER BY namespace, name", (kind,))
    return [_record(row) for row in rows]


def delete(conn: sqlite3.Connection, kind: str, namespace: str, name: str) -> bool:
    cursor = conn.execute(
        "DELETE FROM resources WHERE kind = ? AND namespace = ? AND name = ?", (kind, namespace, name)
    )
    return cursor.rowcount > 0


def _record(row: tuple[Any, ...]) -> ResourceRecord:
    kind, namespace, name, spec_json, spec_yaml, generation, created, updated = row
    return ResourceRecord(
        kind=kind,
        namespace=namespace,
        name=name,
        spec_json=spec_json,
        spec_yaml=spec_yaml,
        generation=generation,
        created_at=codec.parse(created),
        updated_at=codec.parse(updated),
    )
