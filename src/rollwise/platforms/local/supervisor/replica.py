"""The supervisor's working state for one replica: the persisted record plus what exists only in
this control plane (the process handle, probe counters, tasks, the restart timer)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from rollwise.platforms.local.supervisor.backoff import BackoffPolicy
from rollwise.platforms.local.supervisor.probe import Readiness
from rollwise.platforms.local.supervisor.process import ProcessHandle
from rollwise.platforms.local.supervisor.records import ReplicaRecord
from rollwise.platforms.local.supervisor.view import Phase, ReplicaView
from rollwise.spec.workload import ProcessTemplate


def readiness_for(template: ProcessTemplate) -> Readiness:
    probe = template.readiness_probe
    return Readiness(success_threshold=probe.success_threshold, failure_threshold=probe.failure_threshold)


@dataclass(eq=False)
class Replica:
    record: ReplicaRecord
    template: ProcessTemplate
    readiness: Readiness
    process: ProcessHandle | None = None
    phase: Phase = "starting"
    restart_at: float | None = None  # monotonic; set while crashed
    last_exit: str | None = None
    probe_task: asyncio.Task[None] | None = None
    stop_task: asyncio.Task[None] | None = None

    @classmethod
    def create(
        cls, rollout: str, revision: str, index: int, template: ProcessTemplate, extra_env: Mapping[str, str]
    ) -> Replica:
        record = ReplicaRecord(
            rollout=rollout,
            revision=revision,
            index=index,
            template=template.model_dump(mode="json", by_alias=True, exclude_none=True),
            extra_env=dict(extra_env),
        )
        return cls(record=record, template=template, readiness=readiness_for(template))

    @property
    def group(self) -> tuple[str, str]:
        return (self.record.rollout, self.record.revision)

    @property
    def active(self) -> bool:
        """Counts toward the revision's replicas (it is not being stopped)."""
        return self.stop_task is None and self.phase not in ("draining", "stopped")

    def use_template(self, template: ProcessTemplate, extra_env: Mapping[str, str]) -> bool:
        """Take what the next start should run; a running process is left as it is. True if changed."""
        dumped = template.model_dump(mode="json", by_alias=True, exclude_none=True)
        if dumped == self.record.template and dict(extra_env) == self.record.extra_env:
            return False
        self.template = template
        self.record.template = dumped
        self.record.extra_env = dict(extra_env)
        return True

    def view(self, policy: BackoffPolicy) -> ReplicaView:
        rec = self.record
        return ReplicaView(
            rollout=rec.rollout,
            revision=rec.revision,
            index=rec.index,
            pid=rec.pid,
            port=rec.port,
            phase=self.phase,
            restarts=rec.restarts,
            crash_looping=policy.crash_looping(rec.streak),
            ready_since=None if rec.ready_since is None else datetime.fromtimestamp(rec.ready_since, UTC),
            last_exit=self.last_exit,
        )
