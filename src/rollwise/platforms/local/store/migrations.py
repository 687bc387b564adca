"""The schema as a numbered list of forward migrations. Each is applied in its own transaction,
recorded in `schema_migrations`, and never edited once released: a change is a new step at the end.

Opening a database whose version is newer than the last step here is refused, since this code
would misread tables it does not know."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rollwise.platforms.local.store import codec
from rollwise.platforms.local.store.errors import NotAStateDatabaseError, SchemaTooNewError, SchemaTooOldError


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    # Separate statements, not a script: sqlite3's executescript() commits first, which would break
    # the one-transaction-per-step guarantee.
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "rollouts, revisions and events",
        (
            """CREATE TABLE rollouts (
                name TEXT PRIMARY KEY CHECK (name <> ''),
                namespace TEXT NOT NULL,
                spec_json TEXT NOT NULL CHECK (json_valid(spec_json)),
                spec_yaml TEXT NOT NULL,
                generation INTEGER NOT NULL CHECK (generation >= 1),
                status_json TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(status_json)),
                version INTEGER NOT NULL CHECK (version >= 1),
                -- Highest revision number ever given, so numbers keep rising after old ones are pruned.
                last_revision_number INTEGER NOT NULL DEFAULT 0,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            ) STRICT""",
            """CREATE TABLE revisions (
                rollout TEXT NOT NULL REFERENCES rollouts(name) ON DELETE CASCADE,
                hash TEXT NOT NULL CHECK (hash <> ''),
                number INTEGER NOT NULL CHECK (number >= 1),
                template_json TEXT NOT NULL CHECK (json_valid(template_json)),
                created_at TEXT NOT NULL,
                PRIMARY KEY (rollout, hash),
                UNIQUE (rollout, number)
            ) STRICT""",
            # AUTOINCREMENT: ids are never reused, so a watcher asking for events after id N cannot
            # miss new ones that took the id of a deleted row.
            """CREATE TABLE events (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                rollout TEXT NOT NULL REFERENCES rollouts(name) ON DELETE CASCADE,
                ts TEXT NOT NULL,
                type TEXT NOT NULL CHECK (type IN ('Normal', 'Warning')),
                reason TEXT NOT NULL,
                message TEXT NOT NULL
            ) STRICT""",
            "CREATE INDEX events_by_rollout ON events (rollout, id)",
        ),
    ),
    Migration(
        2,
        "analysis runs and measurements",
        (
            """CREATE TABLE analysis_runs (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                rollout TEXT NOT NULL REFERENCES rollouts(name) ON DELETE CASCADE,
                name TEXT NOT NULL CHECK (name <> ''),
                phase TEXT NOT NULL,
                message TEXT,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                UNIQUE (rollout, name)
            ) STRICT""",
            """CREATE TABLE measurements (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                run_id INTEGER NOT NULL REFERENCES analysis_runs(id) ON DELETE CASCADE,
                metric TEXT NOT NULL,
                ts TEXT NOT NULL,
                phase TEXT NOT NULL,
                value TEXT,
                message TEXT
            ) STRICT""",
            "CREATE INDEX measurements_by_metric ON measurements (run_id, metric, id)",
        ),
    ),
    Migration(
        3,
        "replica processes of the local supervisor",
        (
            # No foreign key to rollouts: a process outlives the row of a deleted rollout until the
            # supervisor has stopped it, and the supervisor must still find it after a restart.
            """CREATE TABLE replicas (
                rollout TEXT NOT NULL,
                revision TEXT NOT NULL,
                idx INTEGER NOT NULL CHECK (idx >= 0),
                pid INTEGER NOT NULL,
                port INTEGER NOT NULL,
                started_ticks INTEGER NOT NULL,
                restarts INTEGER NOT NULL DEFAULT 0,
                extra_json TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(extra_json)),
                updated_at TEXT NOT NULL,
                PRIMARY KEY (rollout, revision, idx)
            ) STRICT""",
        ),
    ),
    Migration(
        4,
        "feature flag history",
        (
            """CREATE TABLE flag_history (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                ts TEXT NOT NULL,
                flagset TEXT NOT NULL,
                flag TEXT NOT NULL,
                old_json TEXT CHECK (old_json IS NULL OR json_valid(old_json)),
                new_json TEXT CHECK (new_json IS NULL OR json_valid(new_json)),
                command TEXT NOT NULL
            ) STRICT""",
            "CREATE INDEX flag_history_by_flag ON flag_history (flagset, flag, id)",
        ),
    ),
    Migration(
        5,
        "other applied resources, and the state of analysis runs",
        (
            # AnalysisTemplates, ClusterAnalysisTemplates and FlagSets as applied; a cluster-scoped
            # kind has namespace ''. No foreign key: rollouts refer to templates by name only, and
            # a template may be applied before or after the rollouts using it.
            """CREATE TABLE resources (
                kind TEXT NOT NULL CHECK (kind <> ''),
                namespace TEXT NOT NULL,
                name TEXT NOT NULL CHECK (name <> ''),
                spec_json TEXT NOT NULL CHECK (json_valid(spec_json)),
                spec_yaml TEXT NOT NULL,
                generation INTEGER NOT NULL CHECK (generation >= 1),
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (kind, namespace, name)
            ) STRICT""",
            # What a restarted control plane needs to resume a run where it was (the run's request
            # and its measurement state machine), as one JSON object.
            "ALTER TABLE analysis_runs ADD COLUMN state_json TEXT CHECK (state_json IS NULL OR json_valid(state_json))",
        ),
    ),
)

LATEST = MIGRATIONS[-1].version

_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TEXT NOT NULL
) STRICT"""


def current_version(conn: sqlite3.Connection, path: Path) -> int:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    if "schema_migrations" not in tables:
        if tables - {"sqlite_sequence"}:
            raise NotAStateDatabaseError(path)
        return 0
    (version,) = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(version)


def check_readable(conn: sqlite3.Connection, path: Path, migrations: Sequence[Migration] = MIGRATIONS) -> None:
    """For a read-only opener: the schema must be exactly the one this code knows."""
    known = migrations[-1].version
    found = current_version(conn, path)
    if found > known:
        raise SchemaTooNewError(path, found, known)
    if found < known:
        raise SchemaTooOldError(path, found, known)


def migrate(conn: sqlite3.Connection, path: Path, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database up to the last of `migrations`; return the version it was at before.

    `conn` must be in autocommit mode. Safe against another process migrating at the same time:
    each step re-reads the version under the write lock and skips what the other one applied."""
    _check_numbering(migrations)
    known = migrations[-1].version
    before = current_version(conn, path)
    if before > known:
        raise SchemaTooNewError(path, before, known)
    for step in migrations:
        if step.version <= before:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if current_version(conn, path) < step.version:
                conn.execute(_VERSION_TABLE)
                for statement in step.statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
                    (step.version, step.description, codec.stamp(codec.utc_now())),
                )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    # A newer rollwise may have migrated past us while we waited for the lock.
    after = current_version(conn, path)
    if after > known:
        raise SchemaTooNewError(path, after, known)
    return before


def _check_numbering(migrations: Sequence[Migration]) -> None:
    numbers = [m.version for m in migrations]
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"migrations must be numbered 1, 2, 3, ... without gaps (got {numbers})")
