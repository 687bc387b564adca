"""Rollout rows: the spec as applied, the YAML as written, the generation and the status.

`generation` counts spec changes only (as metadata.generation does in Kubernetes), so a controller
can tell "the user asked for something new" from "someone rewrote the status"; `version` counts every
write and is the token for optimistic concurrency."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rollwise.platforms.local.store import codec
from rollwise.platforms.local.store.errors import RolloutNotFoundError, StaleWriteError
from rollwise.platforms.local.store.records import ApplyResult, RolloutRecord

_COLUMNS = "name, namespace, spec_json, spec_yaml, generation, status_json, version, created_at, updated_at"


def apply(
    conn: sqlite3.Connection,
    name: str,
    spec: Mapping[str, Any] | str,
    yaml_text: str,
    namespace: str,
    now: datetime,
) -> ApplyResult:
    spec_json = codec.canonical_object(spec, "the rollout spec")
    stamp = codec.stamp(now)
    row = conn.execute(
        "SELECT spec_json, spec_yaml, namespace, generation FROM rollouts WHERE name = ?", (name,)
    ).fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO rollouts (name, namespace, spec_json, spec_yaml, generation, version, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, 1, 1, ?, ?)",
            (name, namespace, spec_json, yaml_text, stamp, stamp),
        )
        return ApplyResult(1, True)
    old_spec, old_yaml, old_namespace, generation = row
    spec_changed = old_spec != spec_json
    if not spec_changed and old_yaml == yaml_text and old_namespace == namespace:
        # Re-applying the same file is a no-op: no new version, so no reconciler sees a conflict.
        return ApplyResult(generation, False)
    generation += 1 if spec_changed else 0
    conn.execute(
        "UPDATE rollouts SET namespace = ?, spec_json = ?, spec_yaml = ?, generation = ?, version = version + 1,"
        " updated_at = ? WHERE name = ?",
        (namespace, spec_json, yaml_text, generation, stamp, name),
    )
    return ApplyResult(generation, spec_changed)


def write_status(
    conn: sqlite3.Connection,
    name: str,
    status: Mapping[str, Any] | str,
    now: datetime,
    expected_version: int | None,
    expected_generation: int | None,
) -> int:
    status_json = codec.canonical_object(status, "the rollout status")
    row = conn.execute("SELECT version, generation, status_json FROM rollouts WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise RolloutNotFoundError(name)
    version, generation, old_status = row
    if expected_version is not None and expected_version != version:
        raise StaleWriteError(name, "version", expected_version, version)
    if expected_generation is not None and expected_generation != generation:
        raise StaleWriteError(name, "generation", expected_generation, generation)
    if old_status == status_json:
        # A controller rewrites the status every tick; an unchanged one costs no write and no version.
        return int(version)
    conn.execute(
        "UPDATE rollouts SET status_json = ?, version = version + 1, updated_at = ? WHERE name = ?",
        (status_json, codec.stamp(now), name),
    )
    return int(version) + 1


def get(conn: sqlite3.Connection, name: str) -> RolloutRecord | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM rollouts WHERE name = ?", (name,)).fetchone()
    return None if row is None else _record(row)


def list_all(conn: sqlite3.Connection, namespace: str | None) -> list[RolloutRecord]:
    if namespace is None:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM rollouts ORDER BY name")
    else:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM rollouts WHERE namespace = ? ORDER BY name", (namespace,))
    return [_record(row) for row in rows]


def delete(conn: sqlite3.Connection, name: str) -> bool:
    """Revisions, events and analysis go with the rollout (foreign keys cascade); replica records
    stay until the supervisor has stopped their processes."""
    return conn.execute("DELETE FROM rollouts WHERE name = ?", (name,)).rowcount > 0


def require(conn: sqlite3.Connection, name: str) -> None:
    if conn.execute("SELECT 1 FROM rollouts WHERE name = ?", (name,)).fetchone() is None:
        raise RolloutNotFoundError(name)


def _record(row: tuple[Any, ...]) -> RolloutRecord:
    name, namespace, spec_json, spec_yaml, generation, status_json, version, created, updated = row
    return RolloutRecord(
        name=name,
        namespace=namespace,
        spec_json=spec_json,
        spec_yaml=spec_yaml,
        generation=generation,
        status_json=status_json,
        version=version,
        created_at=codec.parse(created),
        updated_at=codec.parse(updated),
    )
