"""One SQLite connection per Store, configured for a daemon writing while a CLI reads, and the
transactions every Store method runs in.

Writes start with BEGIN IMMEDIATE: the write lock is taken up front, where the busy timeout can wait
for it. A deferred transaction that reads and then writes would instead fail at once with
SQLITE_BUSY when another process committed in between, and no timeout helps with that."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from rollwise.platforms.local.store.errors import StoreBusyError, StoreError

DB_MODE = 0o600
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def connect(path: Path, busy_timeout: float, readonly: bool) -> sqlite3.Connection:
    if readonly:
        if not path.exists():
            raise StoreError(f"no state database at {path}; start the control plane with rollwise up")
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=busy_timeout, isolation_level=None
        )
    else:
        # Create the file ourselves so it is private from the start: it holds specs, which may carry
        # environment values. SQLite gives the -wal and -shm files the database file's mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, DB_MODE))
        # isolation_level=None: the sqlite3 module must not open transactions behind our back; we
        # issue BEGIN/COMMIT ourselves. check_same_thread=False: the Store's lock serialises use.
        conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    try:
        _configure(conn, busy_timeout, readonly)
    except BaseException:
        conn.close()
        raise
    return conn


def _configure(conn: sqlite3.Connection, busy_timeout: float, readonly: bool) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    conn.execute("PRAGMA foreign_keys = ON")
    # With WAL, NORMAL loses at most the last commits on power loss, never consistency; a process
    # crash loses nothing. FULL would fsync on every status write of every tick.
    conn.execute("PRAGMA synchronous = NORMAL")
    if readonly:
        return
    # The journal mode is stored in the file; only the first opener switches it, so later openers
    # never need the exclusive lock the switch takes.
    (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
    if str(mode).lower() != "wal":
        (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(mode).lower() != "wal":
            raise StoreError(f"could not switch the state database to WAL mode (got {mode!r})")


def is_busy(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in _BUSY_CODES


class Session:
    """Hands out transactions on one connection. Writes nest as savepoints, so a Store method stays
    atomic on its own and also joins a caller's `transaction()`; reads inside a write see its
    changes. A read snapshot cannot be upgraded to a write (see the module docstring)."""

    def __init__(self, conn: sqlite3.Connection, path: Path, busy_timeout: float, readonly: bool) -> None:
        self.conn = conn
        self.path = path
        self.busy_timeout = busy_timeout
        self.readonly = readonly
        self._lock = threading.RLock()
        self._mode: Literal["read", "write"] | None = None
        self._depth = 0

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise StoreError(f"{self.path} was opened read-only; writes go through the control plane")
        with self._lock:
            if self._mode == "read":
                raise StoreError("cannot write inside a read snapshot; use Store.transaction() instead")
            if self._mode == "write":
                with self._savepoint():
                    yield self.conn
                return
            self._execute("BEGIN IMMEDIATE")
            self._mode = "write"
            try:
                yield self.conn
            except BaseException:
                self._end("ROLLBACK")
                raise
            self._end("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._mode is not None:
                yield self.conn
                return
            # A deferred transaction pins one snapshot for every query inside it, so a reader never
            # sees half of another process's sequence of commits interleaved with its own queries.
            self._execute("BEGIN")
            self._mode = "read"
            try:
                yield self.conn
            finally:
                self._end("COMMIT")

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        self._depth += 1
        name = f"sp{self._depth}"
        self.conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self.conn.execute(f"ROLLBACK TO {name}")
            self.conn.execute(f"RELEASE {name}")
            raise
        else:
            self.conn.execute(f"RELEASE {name}")
        finally:
            self._depth -= 1

    def _end(self, verb: str) -> None:
        self._mode = None
        try:
            self.conn.execute(verb)
        except sqlite3.Error:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def _execute(self, sql: str) -> None:
        try:
            self.conn.execute(sql)
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                raise StoreBusyError(self.path, self.busy_timeout) from exc
            raise
