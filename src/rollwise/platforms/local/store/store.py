"""The Store: the local platform's state in `<state dir>/state.db`.

Every method runs in one transaction, so a crash (even SIGKILL) between two of its statements
leaves nothing half done; `transaction()` groups several methods into one. The database is shared
safely between processes (the daemon writing while a CLI reads): WAL lets readers proceed while one
writer commits, and writers queue on the busy timeout. One Store is safe to share between threads;
after a fork, open a new one in the child."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from rollwise.platforms.local.store import (
    analysis,
    codec,
    events,
    flags,
    migrations,
    replicas,
    resources,
    revisions,
    rollouts,
)
from rollwise.platforms.local.store.connection import Session, connect, is_busy
from rollwise.platforms.local.store.errors import StoreBusyError
from rollwise.platforms.local.store.records import (
    AnalysisRunRecord,
    ApplyResult,
    EventRecord,
    EventType,
    FlagChange,
    MeasurementRecord,
    ReplicaRecord,
    ResourceRecord,
    Retention,
    RevisionRecord,
    RolloutRecord,
)
from rollwise.platforms.local.store.state_dir import db_path, ensure_state_dir

DEFAULT_BUSY_TIMEOUT = 10.0


class Store:
    def __init__(
        self,
        path: Path,
        *,
        readonly: bool = False,
        retention: Retention | None = None,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        clock: Callable[[], datetime] = codec.utc_now,
        migrations_: tuple[migrations.Migration, ...] = migrations.MIGRATIONS,
    ) -> None:
        """Open (creating and migrating unless `readonly`) the database at `path`. A read-only
        Store never migrates: it refuses a schema other than its own, so a CLI cannot change the
        schema under a running daemon. `migrations_` is for tests of the migrations themselves."""
        self.path = path
        self.retention = retention or Retention()
        self._clock = clock
        conn = connect(path, busy_timeout, readonly)
        try:
            if readonly:
                migrations.check_readable(conn, path, migrations_)
            else:
                migrations.migrate(conn, path, migrations_)
        except sqlite3.OperationalError as exc:
            conn.close()
            if is_busy(exc):
                raise StoreBusyError(path, busy_timeout) from exc
            raise
        except BaseException:
            conn.close()
            raise
        self._session = Session(conn, path, busy_timeout, readonly)
        self.replicas = ReplicaTable(self)

    @classmethod
    def open(
        cls,
        state_dir: Path,
        *,
        readonly: bool = False,
        retention: Retention | None = None,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        clock: Callable[[], datetime] = codec.utc_now,
        migrations_: tuple[migrations.Migration, ...] = migrations.MIGRATIONS,
    ) -> Store:
        """The store of a state directory, creating the directory (mode 0700) unless `readonly`."""
        if not readonly:
            ensure_state_dir(state_dir)
        return cls(
            db_path(state_dir),
            readonly=readonly,
            retention=retention,
            busy_timeout=busy_timeout,
            clock=clock,
            migrations_=migrations_,
        )

    def close(self) -> None:
        self._session.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # --- transactions -------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """Group writes (and reads) into one atomic transaction holding the write lock: all of them
        or none are committed. Keep it short, since every other writer waits for it."""
        with self._session.write():
            yield self

    @contextmanager
    def snapshot(self) -> Iterator[Store]:
        """Group reads so they all see the database as of one instant, without blocking writers."""
        with self._session.read():
            yield self

    def schema_version(self) -> int:
        with self._session.read() as conn:
            return migrations.current_version(conn, self.path)

    # --- rollouts -----------------------------------------------------------------------------------

    def apply_rollout(
        self, name: str, spec: Mapping[str, Any] | str, yaml_text: str, *, namespace: str = "default"
    ) -> ApplyResult:
        """Create or update a rollout. The generation starts at 1 and grows only when the spec (as
        canonical JSON) changes; `changed` says whether it did (or the rollout is new)."""
        with self._session.write() as conn:
            return rollouts.apply(conn, name, spec, yaml_text, namespace, self._clock())

    def get_rollout(self, name: str) -> RolloutRecord | None:
        with self._session.read() as conn:
            return rollouts.get(conn, name)

    def list_rollouts(self, namespace: str | None = None) -> list[RolloutRecord]:
        with self._session.read() as conn:
            return rollouts.list_all(conn, namespace)

    def write_status(
        self,
        name: str,
        status: Mapping[str, Any] | str,
        *,
        expected_version: int | None = None,
        expected_generation: int | None = None,
    ) -> int:
        """Replace the status and return the rollout's new version. With `expected_version` (the
        version the caller read) the write fails with StaleWriteError if anyone wrote the rollout
        since; with `expected_generation`, if the spec changed since. An unchanged status is not
        written and keeps the version."""
        with self._session.write() as conn:
            return rollouts.write_status(conn, name, status, self._clock(), expected_version, expected_generation)

    def delete_rollout(self, name: str) -> bool:
        """Delete a rollout with its revisions, events and analysis; False if there was none."""
        with self._session.write() as conn:
            return rollouts.delete(conn, name)

    # --- other resources (analysis templates, flag sets) -------------------------------------------

    def apply_resource(
        self, kind: str, namespace: str, name: str, document: Mapping[str, Any] | str, yaml_text: str
    ) -> ApplyResult:
        """Create or update a resource other than a Rollout (namespace '' for a cluster-scoped one)."""
        with self._session.write() as conn:
            return resources.apply(conn, kind, namespace, name, document, yaml_text, self._clock())

    def get_resource(self, kind: str, namespace: str, name: str) -> ResourceRecord | None:
        with self._session.read() as conn:
            return resources.get(conn, kind, namespace, name)

    def list_resources(self, kind: str | None = None) -> list[ResourceRecord]:
        with self._session.read() as conn:
            return resources.list_all(conn, kind)

    def delete_resource(self, kind: str, namespace: str, name: str) -> bool:
        with self._session.write() as conn:
            return resources.delete(conn, kind, namespace, name)

    # --- revisions ----------------------------------------------------------------------------------

    def record_revision(self, rollout: str, hash: str, template: Mapping[str, Any] | str) -> RevisionRecord:
        """Record that `hash` is being rolled out: a new revision gets the next number, an older one
        is renumbered as the newest (as `kubectl rollout history` does on undo), the newest stays."""
        with self._session.write() as conn:
            return revisions.record(conn, rollout, hash, template, self._clock())

    def revision(self, rollout: str, hash: str) -> RevisionRecord | None:
        with self._session.read() as conn:
            return revisions.get(conn, rollout, hash)

    def revision_by_number(self, rollout: str, number: int) -> RevisionRecord | None:
        with self._session.read() as conn:
            return revisions.by_number(conn, rollout, number)

    def revisions(self, rollout: str) -> list[RevisionRecord]:
        """Oldest number first."""
        with self._session.read() as conn:
            return revisions.list_for(conn, rollout)

    def prune_revisions(self, rollout: str, keep: Collection[str]) -> int:
        with self._session.write() as conn:
            return revisions.prune(conn, rollout, keep)

    # --- events -------------------------------------------------------------------------------------

    def add_event(
        self, rollout: str, type: EventType, reason: str, message: str, *, ts: datetime | None = None
    ) -> EventRecord:
        with self._session.write() as conn:
            return events.add(
                conn, rollout, type, reason, message, ts or self._clock(), self.retention.events_per_rollout
            )

    def events(self, rollout: str, limit: int | None = 100, *, after: int | None = None) -> list[EventRecord]:
        """Oldest first: the newest `limit`, or with `after` the first `limit` after that id."""
        with self._session.read() as conn:
            return events.list_for(conn, rollout, limit, after)

    # --- analysis -----------------------------------------------------------------------------------

    def set_analysis_run(self, rollout: str, run: str, phase: str, message: str | None = None) -> AnalysisRunRecord:
        with self._session.write() as conn:
            return analysis.set_run(conn, rollout, run, phase, message, self._clock(), self.retention.runs_per_rollout)

    def analysis_runs(self, rollout: str) -> list[AnalysisRunRecord]:
        with self._session.read() as conn:
            return analysis.runs(conn, rollout)

    def save_run_state(self, rollout: str, run: str, phase: str, message: str | None, state: Mapping[str, Any]) -> None:
        """Phase and message of a run, with the JSON state a restarted control plane resumes it from."""
        with self._session.write() as conn:
            analysis.save_state(
                conn, rollout, run, phase, message, state, self._clock(), self.retention.runs_per_rollout
            )

    def run_state(self, rollout: str, run: str) -> dict[str, Any] | None:
        with self._session.read() as conn:
            return analysis.load_state(conn, rollout, run)

    def add_measurement(
        self,
        rollout: str,
        run: str,
        metric: str,
        *,
        phase: str,
        value: str | None = None,
        message: str | None = None,
        ts: datetime | None = None,
    ) -> MeasurementRecord:
        """Record a measurement, creating the run (phase Running) if it is new."""
        with self._session.write() as conn:
            return analysis.add_measurement(
                conn,
                rollout,
                run,
                metric,
                phase,
                value,
                message,
                ts or self._clock(),
                self.retention.measurements_per_metric,
                self.retention.runs_per_rollout,
            )

    def measurements(
        self, rollout: str, *, run: str | None = None, metric: str | None = None, limit: int | None = None
    ) -> list[MeasurementRecord]:
        """The newest `limit` measurements matching, oldest first."""
        with self._session.read() as conn:
            return analysis.measurements(conn, rollout, run, metric, limit)

    # --- feature flags ------------------------------------------------------------------------------

    def record_flag_change(
        self, flagset: str, flag: str, old: Any, new: Any, command: str, *, ts: datetime | None = None
    ) -> FlagChange:
        with self._session.write() as conn:
            return flags.record(
                conn, flagset, flag, old, new, command, ts or self._clock(), self.retention.flag_changes_per_flagset
            )

    def flag_history(
        self, flagset: str | None = None, flag: str | None = None, limit: int | None = 100
    ) -> list[FlagChange]:
        with self._session.read() as conn:
            return flags.history(conn, flagset, flag, limit)

    # --- for the replica table ----------------------------------------------------------------------

    def _save_replica(self, record: ReplicaRecord) -> None:
        with self._session.write() as conn:
            replicas.save(conn, record, self._clock())

    def _delete_replica(self, rollout: str, revision: str, index: int) -> bool:
        with self._session.write() as conn:
            return replicas.delete(conn, rollout, revision, index)

    def _list_replicas(self) -> list[ReplicaRecord]:
        with self._session.read() as conn:
            return replicas.list_all(conn)


class ReplicaTable:
    """The supervisor's ReplicaRecords: `store.replicas.save(record)`, `.delete(...)`, `.list()`."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def save(self, record: ReplicaRecord) -> None:
        self._store._save_replica(record)

    def delete(self, rollout: str, revision: str, index: int) -> None:
        self._store._delete_replica(rollout, revision, index)

    def list(self) -> list[ReplicaRecord]:
        return self._store._list_replicas()
