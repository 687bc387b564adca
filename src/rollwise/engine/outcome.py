"""What a strategy decides in one reconcile, before the shared parts (route guard, progress
deadline, status) turn it into a plan."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from rollwise.engine.plan import AnalysisRunRequest, MatchRoute, MirrorRoute
from rollwise.spec.strategies.abtest import StickyKey

Role = Literal["stable", "canary", "preview", "active", "old"]


@dataclass
class Outcome:
    replicas: dict[str, int] = field(default_factory=dict)
    weights: dict[str, int] = field(default_factory=dict)
    matches: list[MatchRoute] = field(default_factory=list)
    mirrors: list[MirrorRoute] = field(default_factory=list)
    sticky_by: StickyKey | None = None
    preview: str | None = None
    runs: list[AnalysisRunRequest] = field(default_factory=list)
    wake: list[datetime] = field(default_factory=list)
    message: str = ""
    # Replicas are awaited (the progress deadline runs) — as opposed to time, analysis or a human.
    waiting: bool = False
    roles: dict[str, Role] = field(default_factory=dict)
    # The weight a canary's steps have given it, before the route guard; remembered.
    canary_weight: int | None = None
    # Said in the status message. Derived from inputs and step alone, never from remembered
    # weights, so that a restarted engine says the same.
    notes: list[str] = field(default_factory=list)
