"""`ReplicaRecords` over the SQLite store's replica table (`Store.replicas`).

The table has a column for what identifies the process (pid, port, start ticks, restarts) and one
JSON object for the rest. Its identity columns are NOT NULL; a replica waiting for its restart has
no process, which is written as 0 (pid 0 never names a process a user started)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rollwise.platforms.local.store import ReplicaRecord as StoreRow
from rollwise.platforms.local.store import ReplicaTable
from rollwise.platforms.local.supervisor.records import ReplicaRecord

_IDENTITY = ("rollout", "revision", "index", "pid", "port", "start_time", "restarts")


def to_row(record: ReplicaRecord) -> StoreRow:
    data = record.to_json()
    extra: dict[str, Any] = {k: v for k, v in data.items() if k not in _IDENTITY}
    return StoreRow(
        rollout=record.rollout,
        revision=record.revision,
        index=record.index,
        pid=record.pid or 0,
        port=record.port or 0,
        started_ticks=record.start_time or 0,
        restarts=record.restarts,
        extra=extra,
    )


def from_row(row: StoreRow) -> ReplicaRecord:
    return ReplicaRecord.from_json(
        {
            **row.extra,
            "rollout": row.rollout,
            "revision": row.revision,
            "index": row.index,
            "pid": row.pid or None,
            "port": row.port or None,
            "start_time": row.started_ticks or None,
            "restarts": row.restarts,
        }
    )


class StoreReplicaRecords:
    def __init__(self, table: ReplicaTable) -> None:
        self._table = table

    def save(self, record: ReplicaRecord) -> None:
        self._table.save(to_row(record))

    def delete(self, rollout: str, revision: str, index: int) -> None:
        self._table.delete(rollout, revision, index)

    def list(self) -> Sequence[ReplicaRecord]:
        return [from_row(row) for row in self._table.list()]
