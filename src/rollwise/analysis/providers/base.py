"""What every provider shares: the Provider protocol, the context a measurement runs in, and the
conversion of a result (or a failure to get one) into a Measurement."""

from __future__ import annotations

import base64
import functools
import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from rollwise.analysis.args import SecretResolver, redact, secret_value
from rollwise.analysis.conditions import Assessment, Result, assess, encode_result
from rollwise.analysis.timestamps import format_time, utc_now
from rollwise.spec.analysis import HttpAuth, Measurement, Metric

if TYPE_CHECKING:
    from rollwise.analysis.providers.builtin import BuiltinPrometheus, TrafficSource
    from rollwise.analysis.providers.kubernetes_job import KubernetesJobs


@dataclass(frozen=True)
class MeasureContext:
    """Where a measurement runs. `revisions` maps roles ("canary", "stable") to revision names for
    builtin metrics; `traffic` is the local proxy's counters, `builtin_prometheus` the Kubernetes
    way to the same figures; `kubernetes_jobs` where job metrics with a JobSpec run."""

    clock: Callable[[], datetime] = utc_now
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    secrets: SecretResolver | None = None
    revisions: Mapping[str, str] = field(default_factory=dict)
    traffic: TrafficSource | None = None
    builtin_prometheus: BuiltinPrometheus | None = None
    kubernetes_jobs: KubernetesJobs | None = None


class Provider(Protocol):
    async def measure(self, metric: Metric, args: Mapping[str, str], context: MeasureContext) -> Measurement: ...


class MeasurementError(Exception):
    """The provider could not measure: unreachable, timed out, refused, or answered nonsense. The
    measurement is an Error (counted against consecutiveErrorLimit), never a verdict."""


def measurement(
    phase: str, message: str, started: datetime, finished: datetime, value: str | None = None
) -> Measurement:
    return Measurement.model_validate(
        {
            "phase": phase,
            "value": value,
            "message": message,
            "startedAt": format_time(started),
            "finishedAt": format_time(finished),
        }
    )


def judged(
    metric: Metric,
    result: Result,
    started: datetime,
    context: MeasureContext,
    args: Mapping[str, str],
    *,
    no_data: str | None = None,
    note: str | None = None,
) -> Measurement:
    """A measurement whose verdict the metric's conditions give."""
    verdict: Assessment = assess(metric, result, no_data=no_data)
    message = verdict.message if note is None else f"{verdict.message}; {note}"
    value = None if result is None else encode_result(result)
    return measurement(verdict.phase, redact(message, args), started, context.clock(), value)


def errored(message: str, started: datetime, context: MeasureContext, args: Mapping[str, str]) -> Measurement:
    return measurement("Error", redact(message, args), started, context.clock())


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every HTTP client: building one loads the CA bundle, which
    costs more than a whole measurement against a local server."""
    return ssl.create_default_context()


def auth_headers(auth: HttpAuth | None, context: MeasureContext) -> dict[str, str]:
    if auth is None:
        return {}
    if auth.bearer is not None:
        token = secret_value(auth.bearer, context.env, context.secrets, what="the bearer token")
        return {"Authorization": f"Bearer {token}"}
    assert auth.basic is not None
    user = secret_value(auth.basic.username, context.env, context.secrets, what="the basic-auth username")
    password = secret_value(auth.basic.password, context.env, context.secrets, what="the basic-auth password")
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {encoded}"}
