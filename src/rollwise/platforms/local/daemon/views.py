"""The API's JSON shapes (docs/local-api.md) built from what the store and the supervisor hold."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rollwise.engine.simulate import steps_at
from rollwise.platforms.local.store import EventRecord, RevisionRecord, codec
from rollwise.platforms.local.supervisor import ReplicaView
from rollwise.spec.rollout import Rollout
from rollwise.spec.status import RolloutStatus


def summary(rollout: Rollout) -> dict[str, Any]:
    status = rollout.status or RolloutStatus()
    return {
        "name": rollout.metadata.name,
        "strategy": rollout.spec.strategy.name,
        "phase": status.phase,
        "message": status.message,
        "step": status.current_step_index,
        "steps": len(steps_at(rollout, status.stage)),
        "stableRevision": status.stable_revision,
        "currentRevision": status.current_revision,
        "weights": {w.revision: w.weight for w in status.weights or []},
        "replicas": rollout.spec.replicas,
        "readyReplicas": status.ready_replicas,
        "endpoints": status.endpoints or {},
    }


def replicas(views: Mapping[str, Sequence[ReplicaView]]) -> list[dict[str, Any]]:
    return [
        {
            "revision": v.revision,
            "index": v.index,
            "pid": v.pid,
            "port": v.port,
            "phase": v.phase,
            "restarts": v.restarts,
            "crashLooping": v.crash_looping,
            "readySince": None if v.ready_since is None else codec.stamp(v.ready_since),
            "lastExit": v.last_exit,
        }
        for revision in sorted(views)
        for v in views[revision]
    ]


def event(e: EventRecord) -> dict[str, Any]:
    return {"id": e.id, "ts": codec.stamp(e.ts), "type": e.type, "reason": e.reason, "message": e.message}


def history(status: RolloutStatus, records: Sequence[RevisionRecord]) -> list[dict[str, Any]]:
    """The engine's history (its numbers are the ones `undo --to-revision` takes), with each
    revision's template from the store."""
    templates = {r.hash: r.template for r in records}
    return [
        {
            "number": h.number,
            "revision": h.revision,
            "createdAt": h.created_at,
            "current": h.revision == status.current_revision,
            "stable": h.revision == status.stable_revision,
            "template": templates.get(h.revision),
        }
        for h in sorted(status.history or [], key=lambda h: h.number)
    ]
