"""Which series the controller reads for a revision, per router, and what a real Prometheus (Debian's
package, on 127.0.0.1) answers for them: ingress-nginx's durations in seconds become milliseconds,
Envoy Gateway's clusters are found from the HTTPRoute's backendRefs of the revision's Service,
counters summed over the pods reporting them."""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from lightkube import AsyncClient
from lightkube.generic_resource import create_namespaced_resource

from rollwise.analysis.timestamps import utc_now
from rollwise.platforms.kubernetes.traffic import (
    PrometheusReader,
    RevisionSeries,
    TrafficError,
    envoy_series,
    istio_series,
    nginx_series,
)
from rollwise.spec.rollout import Rollout
from rollwise.testing.kubeapi import ApiServer
from tests.analysis.prometheus_process import run_prometheus
from tests.procs import free_port

HTTPRoute = create_namespaced_resource("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes")

# Two controller pods report the canary Service; durations in seconds (ingress-nginx's unit).
NGINX = """# TYPE nginx_ingress_controller_requests counter
nginx_ingress_controller_requests{namespace="shop",service="web-canary",status="200",pod="c1"} 150
nginx_ingress_controller_requests{namespace="shop",service="web-canary",status="200",pod="c2"} 40
nginx_ingress_controller_requests{namespace="shop",service="web-canary",status="503",pod="c1"} 10
nginx_ingress_controller_requests{namespace="shop",service="web-stable",status="200",pod="c1"} 999
# TYPE nginx_ingress_controller_request_duration_seconds histogram
nginx_ingress_controller_request_duration_seconds_bucket{namespace="shop",service="web-canary",le="0.01"} 120
nginx_ingress_controller_request_duration_seconds_bucket{namespace="shop",service="web-canary",le="0.1"} 190
nginx_ingress_controller_request_duration_seconds_bucket{namespace="shop",service="web-canary",le="+Inf"} 200
nginx_ingress_controller_request_duration_seconds_sum{namespace="shop",service="web-canary"} 4.5
nginx_ingress_controller_request_duration_seconds_count{namespace="shop",service="web-canary"} 200
"""
ENVOY = """# TYPE envoy_cluster_upstream_rq_total counter
envoy_cluster_upstream_rq_total{envoy_cluster_name="httproute/shop/web/rule/1/backend/1"} 80
envoy_cluster_upstream_rq_total{envoy_cluster_name="httproute/shop/web/rule/0/backend/0"} 20
envoy_cluster_upstream_rq_total{envoy_cluster_name="httproute/shop/web/rule/1/backend/0"} 700
# TYPE envoy_cluster_upstream_rq_xx counter
envoy_cluster_upstream_rq_xx{envoy_cluster_name="httproute/shop/web/rule/1/backend/1",envoy_response_code_class="5"} 4
envoy_cluster_upstream_rq_xx{envoy_cluster_name="httproute/shop/web/rule/1/backend/1",envoy_response_code_class="2"} 76
# TYPE envoy_cluster_upstream_rq_time histogram
envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="httproute/shop/web/rule/1/backend/1",le="5"} 70
envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="httproute/shop/web/rule/1/backend/1",le="+Inf"} 80
envoy_cluster_upstream_rq_time_sum{envoy_cluster_name="httproute/shop/web/rule/1/backend/1"} 300
envoy_cluster_upstream_rq_time_count{envoy_cluster_name="httproute/shop/web/rule/1/backend/1"} 80
"""


@contextlib.contextmanager
def static_exporter(port: int, text: str) -> Iterator[None]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = text.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def prom(tmp_path: Path) -> Iterator[PrometheusReader]:
    port = free_port()
    with static_exporter(port, NGINX + ENVOY), run_prometheus(tmp_path / "prom", [f"127.0.0.1:{port}"]) as address:
        reader = PrometheusReader(address)

        async def scraped() -> None:
            async with asyncio.timeout(60):
                while (await reader.counts(nginx_series("shop", "web-canary"), None, utc_now())).requests == 0:
                    await asyncio.sleep(0.2)  # Prometheus' first scrape

        asyncio.run(scraped())
        yield reader


def rollout(routing: dict[str, Any], namespace: str = "default") -> Rollout:
    return Rollout.model_validate(
        {
            "apiVersion": "rollwise.dev/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "example/app:1.0"}]},
                },
                "strategy": {
                    "canary": {
                        "stableService": "web-stable",
                        "canaryService": "web-canary",
                        "trafficRouting": routing,
                        "steps": [{"setWeight": 20}],
                    }
                },
            },
        }
    )


def test_nginx_counts_by_service_with_durations_in_milliseconds(prom: PrometheusReader) -> None:
    counts = asyncio.run(prom.counts(nginx_series("shop", "web-canary"), None, utc_now()))
    assert (counts.requests, counts.errors) == (200, 10)
    assert counts.latency_buckets == ((10.0, 120), (100.0, 190), (float("inf"), 200))
    assert counts.latency_sum_ms == pytest.approx(4500.0)


def test_envoy_counts_every_cluster_of_the_revisions_service(prom: PrometheusReader) -> None:
    series = envoy_series(["httproute/shop/web/rule/1/backend/1", "httproute/shop/web/rule/0/backend/0"])
    counts = asyncio.run(prom.counts(series, None, utc_now()))
    assert (counts.requests, counts.errors) == (100, 4)
    assert counts.latency_buckets == ((5.0, 70), (float("inf"), 80))


def test_nothing_reported_is_zero_requests_not_an_error(prom: PrometheusReader) -> None:
    counts = asyncio.run(prom.counts(istio_series("shop", "web-abc"), None, utc_now()))
    assert (counts.requests, counts.errors, counts.latency_buckets) == (0, 0, ())


def test_a_prometheus_not_listening_is_a_traffic_error() -> None:
    reader = PrometheusReader(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(TrafficError, match=re.escape("cannot reach Prometheus at http://127.0.0.1:")):
        asyncio.run(reader.counts(istio_series("shop", "web-abc"), None, utc_now()))


@pytest.mark.asyncio
async def test_the_revisions_series_follow_the_router(api: ApiServer, client: AsyncClient, shared_crds: Path) -> None:
    istio = RevisionSeries(client, rollout({"istio": {"virtualService": {"name": "web"}}}), "v2")
    assert 'destination_workload="web-v2"' in (await istio.of("v2")).requests
    assert 'destination_workload="web-v1"' in (await istio.of("v1")).requests

    nginx = RevisionSeries(client, rollout({"nginx": {"ingress": "web"}}), "v2")
    assert 'service="web-canary"' in (await nginx.of("v2")).requests
    assert 'service="web-stable"' in (await nginx.of("v1")).requests

    gateway = RevisionSeries(client, rollout({"gatewayAPI": {"httpRoute": "web"}}), "v2")
    with pytest.raises(TrafficError, match="HTTPRoute default/web not found"):
        await gateway.of("v2")
    await client.create(
        HTTPRoute.from_dict(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {
                    "parentRefs": [{"name": "gw"}],
                    "rules": [
                        {"name": "rollwise-testers", "backendRefs": [{"name": "web-canary", "port": 80}]},
                        {
                            "backendRefs": [
                                {"name": "web-stable", "port": 80, "weight": 80},
                                {"name": "web-canary", "port": 80, "weight": 20},
                            ]
                        },
                    ],
                },
            }
        ),
        namespace="default",
    )
    canary = (await gateway.of("v2")).requests
    assert "httproute/default/web/rule/0/backend/0|httproute/default/web/rule/1/backend/1" in canary
    assert "httproute/default/web/rule/1/backend/0" in (await gateway.of("v1")).requests

    bare = rollout({"istio": {"virtualService": {"name": "web"}}})
    bare.spec.strategy.canary.traffic_routing = None  # type: ignore[union-attr]
    with pytest.raises(TrafficError, match="the rollout has no trafficRouting"):
        await RevisionSeries(client, bare, "v2").of("v2")
