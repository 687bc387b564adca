"""What callers see of a replica: an immutable snapshot, also passed to the change and drain hooks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

# starting: launched, not yet ready · ready / unready: by the readiness probe, after it was ready
# once · crashed: exited, waiting for its restart · draining: being stopped, no longer routable ·
# stopped: gone (only ever seen by the change hook, as the replica's last view).
Phase = Literal["starting", "ready", "unready", "crashed", "draining", "stopped"]


@dataclass(frozen=True)
class ReplicaView:
    rollout: str
    revision: str
    index: int
    pid: int | None
    port: int | None
    phase: Phase
    restarts: int
    crash_looping: bool
    ready_since: datetime | None
    last_exit: str | None = None  # why the previous process ended ("exited with code 3", ...)

    @property
    def ready(self) -> bool:
        return self.phase == "ready"


ChangeHook = Callable[[ReplicaView], None]
DrainHook = Callable[[ReplicaView], Awaitable[None]]
