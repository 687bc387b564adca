"""The database file: pragmas, permissions and migrations."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from rollwise.platforms.local.store import (
    NotAStateDatabaseError,
    SchemaTooNewError,
    SchemaTooOldError,
    Store,
    StoreBusyError,
    StoreError,
    db_path,
)
from rollwise.platforms.local.store.migrations import LATEST, MIGRATIONS, Migration

FUTURE = (*MIGRATIONS, Migration(LATEST + 1, "from the future", ("CREATE TABLE future (a INTEGER)",)))


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}


def test_wal_and_connection_pragmas(store: Store) -> None:
    with sqlite3.connect(store.path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn = store._session.conn  # the pragmas below are per connection, so ask the store's own
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000


def test_state_files_are_private(store: Store, state_dir: Path) -> None:
    store.apply_rollout("app", {}, "")
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(f"{store.path}-wal").stat().st_mode) == 0o600


def test_migrates_an_empty_database(state_dir: Path) -> None:
    with Store.open(state_dir) as store:
        assert store.schema_version() == LATEST
    assert {
        "rollouts",
        "revisions",
        "events",
        "analysis_runs",
        "measurements",
        "replicas",
        "flag_history",
        "resources",
    } <= tables(db_path(state_dir))
    with sqlite3.connect(db_path(state_dir)) as conn:
        applied = [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert applied == list(range(1, LATEST + 1))


def test_migrates_from_the_previous_version_keeping_data(state_dir: Path) -> None:
    with Store.open(state_dir, migrations_=MIGRATIONS[:-1]) as old:
        assert old.schema_version() == LATEST - 1
        old.apply_rollout("app", {"image": "v1"}, "image: v1\n")
        old.add_event("app", "Normal", "Applied", "first")
        old.add_measurement("app", "run-1", "success-rate", phase="Successful", value="1")
    assert "resources" not in tables(db_path(state_dir))

    with Store.open(state_dir) as new:
        assert new.schema_version() == LATEST
        rollout = new.get_rollout("app")
        assert rollout is not None and rollout.spec == {"image": "v1"}
        assert [e.message for e in new.events("app")] == ["first"]
        assert new.run_state("app", "run-1") is None  # a run from before the column existed
        new.save_run_state("app", "run-1", "Successful", "done", {"metrics": []})
        assert new.run_state("app", "run-1") == {"metrics": []}
        assert new.apply_resource("AnalysisTemplate", "default", "health", {"kind": "AnalysisTemplate"}, "") == (
            1,
            True,
        )


def test_reopening_at_the_latest_version_changes_nothing(state_dir: Path) -> None:
    Store.open(state_dir).close()
    with Store.open(state_dir) as again:
        assert again.schema_version() == LATEST


def test_a_failing_step_leaves_nothing_of_itself(state_dir: Path) -> None:
    broken = (*MIGRATIONS, Migration(LATEST + 1, "broken", ("CREATE TABLE half (a INTEGER)", "SELECT * FROM nowhere")))
    with pytest.raises(sqlite3.OperationalError, match="nowhere"):
        Store.open(state_dir, migrations_=broken)
    assert "half" not in tables(db_path(state_dir))
    with Store.open(state_dir) as store:
        assert store.schema_version() == LATEST


def test_a_database_from_a_newer_version_is_refused(state_dir: Path) -> None:
    Store.open(state_dir, migrations_=FUTURE).close()
    with pytest.raises(SchemaTooNewError) as caught:
        Store.open(state_dir)
    message = str(caught.value)
    assert str(db_path(state_dir)) in message
    assert f"schema version {LATEST + 1}" in message and f"up to {LATEST}" in message
    assert "upgrade rollwise" in message


def test_readonly_never_migrates(state_dir: Path) -> None:
    with pytest.raises(StoreError, match="no state database"):
        Store.open(state_dir, readonly=True)
    Store.open(state_dir, migrations_=MIGRATIONS[:-1]).close()
    with pytest.raises(SchemaTooOldError, match="rollwise up"):
        Store.open(state_dir, readonly=True)
    Store.open(state_dir).close()
    with Store.open(state_dir, readonly=True) as reader:
        assert reader.schema_version() == LATEST
        assert reader.list_rollouts() == []
    Store.open(state_dir, migrations_=FUTURE).close()
    with pytest.raises(SchemaTooNewError):
        Store.open(state_dir, readonly=True)


def test_a_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    with pytest.raises(NotAStateDatabaseError, match="not a rollwise state database"):
        Store(path)


def test_migrations_must_be_numbered_in_order(state_dir: Path) -> None:
    with pytest.raises(ValueError, match="without gaps"):
        Store.open(state_dir, migrations_=(MIGRATIONS[0], MIGRATIONS[2]))


def test_a_readonly_store_refuses_writes(state_dir: Path) -> None:
    Store.open(state_dir).close()
    with Store.open(state_dir, readonly=True) as reader, pytest.raises(StoreError, match="opened read-only"):
        reader.apply_rollout("app", {}, "")


def test_a_writer_held_up_too_long_gets_a_clear_error(store: Store) -> None:
    other = sqlite3.connect(store.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        quick = Store(store.path, busy_timeout=0.2)
        with pytest.raises(StoreBusyError, match=r"stayed locked by another process for 0\.2s"):
            quick.apply_rollout("app", {}, "")
        other.execute("ROLLBACK")
        assert quick.apply_rollout("app", {}, "") == (1, True)
        quick.close()
    finally:
        other.close()
