"""What an analysis run measures with, on either platform: the traffic counters and the clock
(`JobEnv`), and how a run hands its finished measurements back (`Report`)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from rollwise.analysis.args import SecretResolver
from rollwise.analysis.counters import ProxyTraffic
from rollwise.analysis.providers import Provider
from rollwise.analysis.timestamps import utc_now


@dataclass(frozen=True)
class MeasurementOut:
    """A finished measurement, for the platform's measurement history."""

    metric: str
    phase: str
    value: str | None
    message: str | None


Report = Callable[[Sequence[MeasurementOut]], None]


@dataclass
class JobEnv:
    """Where a job measures: the revisions' traffic counters (sampled now by `refresh`), the clock,
    the environment and the Secrets (`secretKeyRef`) secrets are read from, and the metric providers."""

    traffic: ProxyTraffic
    refresh: Callable[[], Awaitable[None]]
    clock: Callable[[], datetime] = utc_now
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    providers: Mapping[str, Provider] | None = None
    secrets: SecretResolver | None = None
