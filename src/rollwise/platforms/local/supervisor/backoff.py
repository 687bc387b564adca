"""Restart backoff, as Kubernetes does it for containers: the delay doubles with each restart up to
a cap, and a replica that stays up long enough starts again from the first delay."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffPolicy:
    initial: float = 1.0
    cap: float = 60.0
    # Seconds a process must stay up for its restart streak to be forgiven.
    reset_after: float = 60.0
    # Restarts within one streak that make a replica crash-looping; the engine's progress deadline
    # treats such a revision as not progressing even while its ready count flaps.
    crash_loop_restarts: int = 3

    def delay(self, streak: int) -> float:
        """Seconds to wait before the restart that follows `streak` earlier restarts."""
        return min(self.cap, self.initial * float(2 ** min(streak, 32)))

    def crash_looping(self, streak: int) -> bool:
        return streak >= self.crash_loop_restarts
