"""What the supervisor shows, as the engine's `Observed`: per revision the replicas asked for,
ready, available (ready for minReadySeconds), present in any state, and crash looping."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from rollwise.engine import Observed, RevisionObserved
from rollwise.platforms.local.supervisor import ReplicaView


@dataclass(frozen=True)
class Observation:
    observed: Observed
    # When the next ready replica becomes available: the engine must look again then, although
    # nothing else will change.
    next_available_at: datetime | None


def observe(
    views_by_revision: Mapping[str, Sequence[ReplicaView]],
    desired: Mapping[str, int],
    min_ready_seconds: int,
    now: datetime,
) -> Observation:
    """`desired` is what the supervisor was last told per revision; a revision missing from it
    (after a restart of the control plane) is taken to want what it runs."""
    revisions: dict[str, RevisionObserved] = {}
    soonest: datetime | None = None
    need = timedelta(seconds=min_ready_seconds)
    for revision, views in views_by_revision.items():
        ready = [v for v in views if v.ready]
        available = 0
        for v in ready:
            since = v.ready_since or now
            if since + need <= now:
                available += 1
            elif soonest is None or since + need < soonest:
                soonest = since + need
        running = sum(1 for v in views if v.phase not in ("draining", "stopped"))
        revisions[revision] = RevisionObserved(
            desired=desired.get(revision, running),
            ready=len(ready),
            available=available,
            existing=sum(1 for v in views if v.phase != "stopped"),
            crash_looping=any(v.crash_looping for v in views),
        )
    return Observation(Observed(revisions=revisions), soonest)


def ready_ports(views_by_revision: Mapping[str, Sequence[ReplicaView]]) -> dict[str, list[int]]:
    """The ports of the ready replicas of each revision: what the proxy may route to."""
    out: dict[str, list[int]] = {}
    for revision, views in views_by_revision.items():
        ports = sorted(v.port for v in views if v.ready and v.port is not None)
        if ports:
            out[revision] = ports
    return out
