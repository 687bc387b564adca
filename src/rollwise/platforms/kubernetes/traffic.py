"""Per-revision traffic figures for the controller, read from the router's own metrics in
Prometheus: requests, 5xx answers and the latency histogram of one revision, either as counted so
far (the judgements subtract two readings) or over a window (builtin metrics).

Which series select one revision, per router (the same series as the ready PromQL templates in
analysis/providers/promql_templates.py):
- istio: `istio_requests_total` and `istio_request_duration_milliseconds` reported by the
  destination, by `destination_workload`. Istio names the workload of a pod after its ReplicaSet
  when the pod has no `pod-template-hash` label, so a revision's workload is its ReplicaSet
  `<rollout>-<revision>`: exact per revision, whether routes address it by Service or by
  DestinationRule subset.
- nginx (ingress-nginx): `nginx_ingress_controller_requests` and `..._request_duration_seconds` by
  `namespace` and `service`: the canary revision behind canaryService, the stable one behind
  stableService (the Services the canary and stable Ingresses send to).
- gatewayAPI (Envoy Gateway): `envoy_cluster_upstream_rq_total`, `..._rq_xx` and `..._rq_time` by
  `envoy_cluster_name`, one cluster per HTTPRoute backendRef
  (`httproute/<namespace>/<route>/rule/<i>/backend/<j>`): every backendRef naming the revision's
  Service, read from the HTTPRoute at each reading.

Counters are summed over the pods and proxies that report them. A sum that goes down (a pod
restarted or went away) is taken as counters starting again, as the local proxy's are."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from lightkube import AsyncClient

from rollwise.analysis.args import redact
from rollwise.analysis.counters import ProxyTraffic
from rollwise.analysis.providers.base import MeasureContext, errored, judged, tls_context
from rollwise.analysis.providers.builtin import TrafficCounts, figure, promql_duration
from rollwise.platforms.kubernetes.names import replicaset_name
from rollwise.spec.analysis import Measurement, Metric
from rollwise.spec.common import duration_seconds
from rollwise.spec.rollout import Rollout

# A Prometheus that cannot be read for this long ends a judgement in Error (shorter outages are
# ridden out: the judgement goes on from the last reading).
UNREACHABLE_GRACE_SECONDS = 30.0
ROUTERS = ("istio", "gatewayAPI", "nginx")


class TrafficError(Exception):
    """The figures cannot be had: no Prometheus configured, unreachable, refused, or a router whose
    metrics Rollwise cannot map to revisions. One line for a run's message."""


@dataclass(frozen=True)
class Series:
    """PromQL selectors of one revision's traffic; durations are multiplied by `scale_ms`."""

    requests: str
    errors: str
    histogram: str  # NAME{LABELS}, without the _bucket/_sum suffix
    scale_ms: float = 1.0

    def part(self, suffix: str) -> str:
        name, _, labels = self.histogram.partition("{")
        return f"{name}{suffix}{{{labels}"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def istio_series(namespace: str, workload: str) -> Series:
    where = (
        f'reporter="destination",destination_workload_namespace={_quote(namespace)},'
        f"destination_workload={_quote(workload)}"
    )
    return Series(
        requests=f"istio_requests_total{{{where}}}",
        errors=f'istio_requests_total{{{where},response_code=~"5.."}}',
        histogram=f"istio_request_duration_milliseconds{{{where}}}",
    )


def nginx_series(namespace: str, service: str) -> Series:
    where = f"namespace={_quote(namespace)},service={_quote(service)}"
    return Series(
        requests=f"nginx_ingress_controller_requests{{{where}}}",
        errors=f'nginx_ingress_controller_requests{{{where},status=~"5.."}}',
        histogram=f"nginx_ingress_controller_request_duration_seconds{{{where}}}",
        scale_ms=1000.0,
    )


def envoy_series(clusters: Sequence[str]) -> Series:
    pattern = "|".join(re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", c) for c in clusters)
    where = f"envoy_cluster_name=~{_quote(pattern)}"
    return Series(
        requests=f"envoy_cluster_upstream_rq_total{{{where}}}",
        errors=f'envoy_cluster_upstream_rq_xx{{{where},envoy_response_code_class="5"}}',
        histogram=f"envoy_cluster_upstream_rq_time{{{where}}}",
    )


class RevisionSeries:
    """Which series select a revision of one Rollout, by its router. `canary` is the revision the
    run judges (the new one); the others are taken as stable."""

    def __init__(self, client: AsyncClient, rollout: Rollout, canary: str) -> None:
        self.client = client
        self.rollout = rollout
        self.namespace = rollout.metadata.namespace or "default"
        self.canary = canary
        strategy = rollout.spec.strategy
        holder = strategy.canary or strategy.shadow or strategy.ab_test
        routing = holder.traffic_routing if holder is not None else None
        self.router = routing.router if routing is not None else None
        self.routing = routing
        self.services = {
            "stable": holder.stable_service if holder is not None else None,
            "canary": holder.canary_service if holder is not None else None,
        }

    def check(self) -> None:
        """Raise TrafficError when the figures cannot be had for this Rollout at all."""
        if self.router not in ROUTERS:
            raise TrafficError(
                "per-revision traffic figures on Kubernetes come from the router's metrics; "
                + ("the rollout has no trafficRouting" if self.router is None else f"the {self.router} router has none")
                + f" (routers with metrics: {', '.join(ROUTERS)})"
            )
        if self.router in ("nginx", "gatewayAPI"):
            missing = [f"{role}Service" for role, svc in self.services.items() if svc is None]
            if missing:
                raise TrafficError(
                    f"the {self.router} router's metrics are per Service: the rollout needs {' and '.join(missing)}"
                )

    async def of(self, revision: str) -> Series:
        self.check()
        role = "canary" if revision == self.canary else "stable"
        if self.router == "istio":
            return istio_series(self.namespace, replicaset_name(self.rollout.metadata.name, revision))
        service = self.services[role]
        assert service is not None
        if self.router == "nginx":
            return nginx_series(self.namespace, service)
        return envoy_series(await self._clusters(service))

    async def _clusters(self, service: str) -> list[str]:
        from rollwise.platforms.kubernetes.routers import objects
        from rollwise.platforms.kubernetes.routers.base import RouterError
        from rollwise.platforms.kubernetes.routers.gateway_api import HTTPRoute

        assert self.routing is not None and self.routing.gateway_api is not None
        gw = self.routing.gateway_api
        namespace = gw.namespace or self.namespace
        try:
            route = await objects.read(self.client, HTTPRoute, gw.http_route, namespace, "HTTPRoute")
        except RouterError as exc:
            raise TrafficError(str(exc)) from None
        rules: list[Any] = (route.get("spec") or {}).get("rules") or []
        out = [
            f"httproute/{namespace}/{gw.http_route}/rule/{i}/backend/{j}"
            for i, rule in enumerate(rules)
            for j, ref in enumerate(rule.get("backendRefs") or [])
            if ref.get("name") == service and ref.get("kind", "Service") == "Service"
        ]
        if not out:
            raise TrafficError(f"no backendRef of HTTPRoute {namespace}/{gw.http_route} names Service {service}")
        return out


class PrometheusReader:
    """Instant queries against one Prometheus, answered as TrafficCounts."""

    def __init__(self, address: str, *, timeout: float = 10.0, headers: Mapping[str, str] | None = None) -> None:
        self.address = address.rstrip("/")
        self.timeout = timeout
        self.headers = dict(headers or {})

    async def counts(self, series: Series, window_seconds: float | None, at: datetime) -> TrafficCounts:
        """What the series counted so far (window None), or during the last `window_seconds`."""

        def over(selector: str) -> str:
            if window_seconds is None:
                return selector
            return f"increase({selector}[{promql_duration(window_seconds)}])"

        async with httpx.AsyncClient(timeout=self.timeout, verify=tls_context()) as client:
            requests, errors, buckets, total = await asyncio.gather(
                self._vector(client, f"sum({over(series.requests)})", at),
                self._vector(client, f"sum({over(series.errors)})", at),
                self._vector(client, f"sum by (le) ({over(series.part('_bucket'))})", at),
                self._vector(client, f"sum({over(series.part('_sum'))})", at),
            )
        histogram = sorted(
            (math.inf if labels.get("le") == "+Inf" else float(labels.get("le", "nan")) * series.scale_ms, _int(v))
            for labels, v in buckets
            if "le" in labels
        )
        latency_sum = sum(v for _, v in total) * series.scale_ms
        n = _int(sum(v for _, v in requests))
        return TrafficCounts(n, min(n, _int(sum(v for _, v in errors))), tuple(histogram), latency_sum)

    async def _vector(self, client: httpx.AsyncClient, query: str, at: datetime) -> list[tuple[dict[str, str], float]]:
        url = f"{self.address}/api/v1/query"
        params = {"query": query, "time": f"{at.timestamp():.3f}", "timeout": f"{self.timeout:g}s"}
        try:
            reply = await client.get(url, params=params, headers=self.headers)
        except httpx.TimeoutException:
            raise TrafficError(f"Prometheus at {self.address} did not answer within {self.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise TrafficError(f"cannot reach Prometheus at {self.address}: {exc or type(exc).__name__}") from None
        if reply.status_code in (401, 403):
            raise TrafficError(f"Prometheus at {self.address} refused the credentials (HTTP {reply.status_code})")
        try:
            body = reply.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("status") != "success":
            detail = body.get("error") if isinstance(body, dict) else reply.text[:200]
            raise TrafficError(f"Prometheus at {self.address} rejected {query!r} (HTTP {reply.status_code}): {detail}")
        data = body.get("data") or {}
        if data.get("resultType") != "vector":
            raise TrafficError(f"Prometheus at {self.address} answered {query!r} with a {data.get('resultType')}")
        out = []
        for sample in data.get("result") or []:
            value = float(sample["value"][1])
            out.append((dict(sample.get("metric") or {}), 0.0 if math.isnan(value) else value))
        return out


def _int(value: float) -> int:
    return max(0, round(value))


class ClusterTraffic:
    """The judgements' traffic source on Kubernetes: a ProxyTraffic (the counter history the
    judgements read, analysis/counters.py) fed by readings of Prometheus for the revisions judged.
    `refresh` takes one reading; Prometheus out of reach is ridden out for
    UNREACHABLE_GRACE_SECONDS, except for the first reading (the judgement's baseline).

    `since`: each reading covers [since, now] (`increase()` over that window: an A/B test compares
    what each variant served since the experiment began, and its verdict is asked for only once the
    experiment is over); without it, the counters since the pods started (a dynamic canary takes
    stable's history from before the canary, and subtracts readings)."""

    def __init__(
        self,
        reader: PrometheusReader,
        series: RevisionSeries,
        revisions: Sequence[str],
        *,
        since: datetime | None = None,
    ) -> None:
        self.reader = reader
        self.series = series
        self.revisions = [r for r in dict.fromkeys(revisions) if r]
        self.since = since
        self.traffic = ProxyTraffic()
        self._read_once = False
        self._failing_since: float | None = None

    async def refresh(self) -> None:
        now = time.monotonic()
        try:
            docs = {}
            at = _utc_now()
            window = None if self.since is None else max(1.0, (at - self.since).total_seconds())
            for revision in self.revisions:
                counts = await self.reader.counts(await self.series.of(revision), window, at)
                docs[revision] = _stats_doc(counts)
        except TrafficError as exc:
            if not self._read_once:
                raise
            self._failing_since = self._failing_since or now
            if now - self._failing_since >= UNREACHABLE_GRACE_SECONDS:
                raise TrafficError(f"{exc} (for {UNREACHABLE_GRACE_SECONDS:g}s)") from None
            return
        self._failing_since = None
        self._read_once = True
        self.traffic.record([{"revisions": docs}], at=now)


def _utc_now() -> datetime:
    from rollwise.analysis.timestamps import utc_now

    return utc_now()


def _stats_doc(c: TrafficCounts) -> dict[str, Any]:
    """The local proxy's /stats shape (durations in seconds), which ProxyTraffic reads."""
    buckets = [["+Inf" if math.isinf(b) else b / 1000.0, n] for b, n in c.latency_buckets]
    return {
        "requests": {"5xx": c.errors, "other": c.requests - c.errors},
        "latency": {"buckets": buckets, "sum": c.latency_sum_ms / 1000.0},
    }


class ClusterBuiltin:
    """The builtin provider on Kubernetes: the figure of one revision over the metric's window,
    from the router's metrics in Prometheus (`reader` None: no Prometheus was configured)."""

    def __init__(self, reader: PrometheusReader | None, series: RevisionSeries | None) -> None:
        self.reader = reader
        self.series = series

    async def measure(self, metric: Metric, args: Mapping[str, str], context: MeasureContext) -> Measurement:
        spec = metric.provider.builtin
        assert spec is not None
        started = context.clock()
        if self.reader is None or self.series is None:
            return errored(NO_PROMETHEUS.format(what="builtin metrics"), started, context, args)
        revision = context.revisions.get(spec.revision)
        if revision is None:
            return errored(f"this analysis run knows no {spec.revision} revision to measure", started, context, args)
        seconds = duration_seconds(spec.window)
        try:
            counts = await self.reader.counts(await self.series.of(revision), seconds, started)
        except TrafficError as exc:
            return errored(redact(str(exc), args), started, context, args)
        value, no_data = figure(spec.metric, counts, f"{revision} ({spec.revision})", promql_duration(seconds))
        return judged(metric, value, started, context, args, no_data=no_data)


NO_PROMETHEUS = (
    "{what} on Kubernetes read the router's metrics from Prometheus, and none is configured: "
    "run the controller with --prometheus-url (or ROLLWISE_PROMETHEUS_URL)"
)
