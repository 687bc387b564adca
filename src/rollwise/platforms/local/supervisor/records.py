"""What the supervisor persists about each replica, so that a control plane started later can
find the processes an earlier one left running, and the stores that keep it.

The SQLite store implements `ReplicaRecords`; the in-memory and JSON-file stores here serve tests
and tools. A record is plain data with a JSON form (`to_json`/`from_json`), so a store may keep it
as one JSON column or map its fields to columns."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass
class ReplicaRecord:
    rollout: str
    revision: str
    index: int
    # The ProcessTemplate (by alias) and the caller's extra env: a supervisor that adopts the
    # replica must be able to probe and restart it before anyone calls `converge` again.
    template: dict[str, Any]
    extra_env: dict[str, str] = field(default_factory=dict)
    pid: int | None = None
    port: int | None = None
    # /proc/<pid>/stat field 22 (clock ticks after boot): a pid with another start time is a
    # different process that reused the number, and must never be signalled.
    start_time: int | None = None
    started_at: float | None = None  # wall clock of the last start, for the backoff reset
    restarts: int = 0
    streak: int = 0  # restarts since the backoff last reset; drives the delay and crash-looping
    ready_since: float | None = None  # wall clock; kept so availability survives adoption
    stopping: bool = False  # a stop that a crashed control plane left unfinished

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.rollout, self.revision, self.index)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReplicaRecord:
        return cls(
            rollout=str(data["rollout"]),
            revision=str(data["revision"]),
            index=int(data["index"]),
            template=dict(data["template"]),
            extra_env={str(k): str(v) for k, v in (data.get("extra_env") or {}).items()},
            pid=_opt_int(data.get("pid")),
            port=_opt_int(data.get("port")),
            start_time=_opt_int(data.get("start_time")),
            started_at=_opt_float(data.get("started_at")),
            restarts=int(data.get("restarts") or 0),
            streak=int(data.get("streak") or 0),
            ready_since=_opt_float(data.get("ready_since")),
            stopping=bool(data.get("stopping", False)),
        )


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


class ReplicaRecords(Protocol):
    """Durable replica records, keyed by (rollout, revision, index). Calls are synchronous and
    short: the supervisor saves on every start, crash, readiness change and stop."""

    def save(self, record: ReplicaRecord) -> None: ...

    def delete(self, rollout: str, revision: str, index: int) -> None: ...

    def list(self) -> Sequence[ReplicaRecord]: ...


class MemoryRecords:
    """Records in a dict. Copies go in and out, as with a real store, so nothing relies on the
    supervisor's objects being shared with it."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str, int], dict[str, Any]] = {}

    def save(self, record: ReplicaRecord) -> None:
        self._items[record.key] = json.loads(json.dumps(record.to_json()))

    def delete(self, rollout: str, revision: str, index: int) -> None:
        self._items.pop((rollout, revision, index), None)

    def list(self) -> Sequence[ReplicaRecord]:
        return [ReplicaRecord.from_json(item) for item in self._items.values()]


class JsonFileRecords:
    """Records in one JSON file, rewritten whole and atomically (temp file + rename) on each
    change, so a control plane killed mid-write leaves the previous version intact."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[tuple[str, str, int], ReplicaRecord]:
        try:
            doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        records = (ReplicaRecord.from_json(item) for item in doc.get("replicas", []))
        return {r.key: r for r in records}

    def _store(self, records: Mapping[tuple[str, str, int], ReplicaRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"replicas": [r.to_json() for r in records.values()]}, indent=1)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name + ".")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def save(self, record: ReplicaRecord) -> None:
        records = self._load()
        records[record.key] = record
        self._store(records)

    def delete(self, rollout: str, revision: str, index: int) -> None:
        records = self._load()
        if records.pop((rollout, revision, index), None) is not None:
            self._store(records)

    def list(self) -> Sequence[ReplicaRecord]:
        return list(self._load().values())
