"""The rows the store hands out: frozen dataclasses, so a reader cannot mistake a copy for a live
view. JSON columns are kept as text and parsed on access, so listing many rollouts stays cheap."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple

EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True, slots=True)
class ReplicaRecord:
    """One replica process the supervisor started. `started_ticks` is the process start time in
    clock ticks since boot (/proc/<pid>/stat field 22): with the pid it tells our process apart from
    an unrelated one that reused the pid after a reboot or a crash."""

    rollout: str
    revision: str
    index: int
    pid: int
    port: int
    started_ticks: int
    restarts: int = 0
    # Whatever else the supervisor needs to adopt the process after a restart (its template, env,
    # backoff state), kept as one JSON object so the store need not follow every change to it.
    extra: dict[str, Any] = field(default_factory=dict)


class ApplyResult(NamedTuple):
    generation: int
    changed: bool


@dataclass(frozen=True, slots=True)
class RolloutRecord:
    name: str
    namespace: str
    spec_json: str
    spec_yaml: str
    generation: int
    status_json: str
    # Bumped by every write to the row (spec, YAML text or status): the optimistic-concurrency token.
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def spec(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.spec_json)
        return value

    @property
    def status(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.status_json)
        return value


@dataclass(frozen=True, slots=True)
class ResourceRecord:
    """An applied AnalysisTemplate, ClusterAnalysisTemplate or FlagSet (namespace '' when
    cluster-scoped). `spec_json` is the whole resource as applied, not only its spec."""

    kind: str
    namespace: str
    name: str
    spec_json: str
    spec_yaml: str
    generation: int
    created_at: datetime
    updated_at: datetime

    @property
    def document(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.spec_json)
        return value


@dataclass(frozen=True, slots=True)
class RevisionRecord:
    rollout: str
    hash: str
    number: int
    template_json: str
    created_at: datetime

    @property
    def template(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.template_json)
        return value


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: int
    ts: datetime
    rollout: str
    type: EventType
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class AnalysisRunRecord:
    rollout: str
    name: str
    phase: str
    message: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class MeasurementRecord:
    id: int
    rollout: str
    run: str
    metric: str
    ts: datetime
    phase: str
    value: str | None
    message: str | None


@dataclass(frozen=True, slots=True)
class FlagChange:
    id: int
    ts: datetime
    flagset: str
    flag: str
    # None means the flag did not exist before (old) or was removed (new).
    old: Any
    new: Any
    command: str


@dataclass(frozen=True, slots=True)
class Retention:
    """How much history the store keeps; the oldest rows beyond these are deleted in the same
    transaction that adds a new one, so the database cannot grow without bound."""

    events_per_rollout: int = 1000
    runs_per_rollout: int = 200
    measurements_per_metric: int = 500
    flag_changes_per_flagset: int = 10_000

    def __post_init__(self) -> None:
        for name in ("events_per_rollout", "runs_per_rollout", "measurements_per_metric", "flag_changes_per_flagset"):
            if getattr(self, name) < 1:
                raise ValueError(f"retention {name} must keep at least 1 row")
