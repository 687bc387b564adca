"""Figures the router already counts per revision: success rate, error rate, request count and
latency (percentiles and mean, in milliseconds) over a window.

Two ways to the same figures: on the local platform the proxy's counters (a `TrafficSource`), on
Kubernetes the router's own Prometheus metrics through `promql_templates`.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rollwise.analysis.conditions import Result
from rollwise.analysis.providers.base import MeasureContext, MeasurementError, errored, judged
from rollwise.analysis.providers.prometheus import query_prometheus
from rollwise.analysis.providers.promql_templates import TemplateError, render
from rollwise.spec.analysis import BuiltinMetric, Measurement, Metric
from rollwise.spec.common import duration_seconds

_QUANTILE_OF: dict[str, float] = {"latency-p50": 0.5, "latency-p90": 0.9, "latency-p95": 0.95, "latency-p99": 0.99}


@dataclass(frozen=True)
class TrafficCounts:
    """What one revision served. `errors` are the answers that count against the revision (its 5xx;
    whether the platform's own failures to reach it count is the platform's choice).
    `latency_buckets` is a cumulative histogram: (upper bound in ms, requests at or under it),
    bounds ascending, the last one normally +inf (then its count is the histogram's total)."""

    requests: int
    errors: int
    latency_buckets: tuple[tuple[float, int], ...] = ()
    latency_sum_ms: float = 0.0

    @classmethod
    def from_seconds(
        cls, requests: int, errors: int, buckets_seconds: Sequence[tuple[float, int]], sum_seconds: float
    ) -> TrafficCounts:
        """From a histogram in seconds, as the proxy and Prometheus keep them."""
        return cls(requests, errors, tuple((b * 1000.0, c) for b, c in buckets_seconds), sum_seconds * 1000.0)

    @property
    def latency_count(self) -> int:
        return self.latency_buckets[-1][1] if self.latency_buckets else 0


class TrafficSource(Protocol):
    """The local proxy's counters: what `revision` served during the last `window_seconds`, or
    None when the proxy has never seen that revision."""

    def traffic(self, revision: str, window_seconds: float) -> TrafficCounts | None: ...


@dataclass(frozen=True)
class BuiltinPrometheus:
    """The Kubernetes way: the router's metrics in Prometheus. `labels` maps a role ("canary",
    "stable") to the label values its router's templates need (see promql_templates)."""

    address: str
    router: str
    labels: Mapping[str, Mapping[str, str]]
    timeout: float = 10.0
    headers: Mapping[str, str] = field(default_factory=dict)


def figure(metric: BuiltinMetric, counts: TrafficCounts, revision: str, window: str) -> tuple[Result, str | None]:
    """The value of `metric`, or None with the reason there is none."""
    where = f"revision {revision} in the last {window}"
    if metric == "request-count":
        return counts.requests, None
    if metric in ("success-rate", "error-rate"):
        if counts.requests == 0:
            return None, f"no requests reached {where}"
        errors = min(counts.errors, counts.requests)
        rate = errors / counts.requests
        return (1.0 - rate if metric == "success-rate" else rate), None
    if counts.latency_count == 0:
        return None, f"no request latencies were recorded for {where}"
    if metric == "latency-mean":
        return counts.latency_sum_ms / counts.latency_count, None
    return histogram_quantile(_QUANTILE_OF[metric], counts.latency_buckets), None


def histogram_quantile(q: float, buckets: Sequence[tuple[float, int]]) -> float:
    """Prometheus' estimate: linear interpolation inside the bucket holding the q-th request, the
    first bucket starting at 0; a quantile in the +inf bucket is the highest finite bound."""
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


class CounterHistory:
    """A TrafficSource over cumulative counters: record a snapshot per revision now and then (the
    proxy's counters never reset while it runs), answer a window by subtracting the newest snapshot
    taken at least `window` before the latest. A window longer than the history covers what there is."""

    def __init__(self, keep_seconds: float = 3600.0) -> None:
        self.keep_seconds = keep_seconds
        self._snapshots: dict[str, deque[tuple[float, TrafficCounts]]] = {}
        self._trimmed: set[str] = set()

    def record(self, revision: str, at: float, counts: TrafficCounts) -> None:
        history = self._snapshots.setdefault(revision, deque())
        history.append((at, counts))
        while len(history) > 2 and history[1][0] <= at - self.keep_seconds:
            history.popleft()
            self._trimmed.add(revision)

    def traffic(self, revision: str, window_seconds: float) -> TrafficCounts | None:
        history = self._snapshots.get(revision)
        if not history:
            return None
        latest_at, latest = history[-1]
        times = [t for t, _ in history]
        i = bisect.bisect_right(times, latest_at - window_seconds) - 1
        if i < 0:
            if revision not in self._trimmed:
                return latest  # counters start at 0 when the proxy first sees a revision
            i = 0
        base = history[i][1]
        if latest.requests < base.requests:
            return latest  # the proxy restarted and its counters began again
        return _subtract(latest, base)


def _subtract(a: TrafficCounts, b: TrafficCounts) -> TrafficCounts:
    if [bound for bound, _ in a.latency_buckets] == [bound for bound, _ in b.latency_buckets]:
        buckets = tuple(
            (bound, ca - cb) for (bound, ca), (_, cb) in zip(a.latency_buckets, b.latency_buckets, strict=True)
        )
        latency_sum = a.latency_sum_ms - b.latency_sum_ms
    else:  # the bucket layout changed: only the newer snapshot's own counts are consistent
        buckets, latency_sum = a.latency_buckets, a.latency_sum_ms
    return TrafficCounts(a.requests - b.requests, a.errors - b.errors, buckets, latency_sum)


def promql_duration(seconds: float) -> str:
    return f"{int(seconds)}s" if seconds == int(seconds) else f"{round(seconds * 1000)}ms"


class BuiltinMeasurer:
    async def measure(self, metric: Metric, args: Mapping[str, str], context: MeasureContext) -> Measurement:
        spec = metric.provider.builtin
        assert spec is not None
        started = context.clock()
        window_seconds = duration_seconds(spec.window)
        window = promql_duration(window_seconds)
        role = spec.revision
        if context.traffic is not None:
            revision = context.revisions.get(role)
            if revision is None:
                return errored(f"this analysis run knows no {role} revision to measure", started, context, args)
            counts = context.traffic.traffic(revision, window_seconds)
            if counts is None:
                return errored(f"the proxy has no counters for {role} revision {revision}", started, context, args)
            value, no_data = figure(spec.metric, counts, f"{revision} ({role})", window)
            return judged(metric, value, started, context, args, no_data=no_data)
        via = context.builtin_prometheus
        if via is None:
            return errored(
                "builtin metrics need the local proxy's counters or, on Kubernetes, a Prometheus address and "
                "router for the ready PromQL templates; neither is configured",
                started,
                context,
                args,
            )
        labels = via.labels.get(role)
        if labels is None:
            return errored(
                f"no {via.router} label values are configured for the {role} revision", started, context, args
            )
        try:
            query = render(via.router, spec.metric, labels, window)
            answer = await query_prometheus(via.address, query, at=started, timeout=via.timeout, headers=via.headers)
        except (TemplateError, MeasurementError) as exc:
            return errored(str(exc), started, context, args)
        return judged(metric, answer.result, started, context, args, no_data=answer.no_data)
