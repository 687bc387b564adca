"""Real servers on 127.0.0.1 for the provider tests: a metrics exporter, a webhook, an
authenticating proxy in front of Prometheus, a server that never answers, and Prometheus itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.procs import free_port, wait_for

Handler = Callable[[BaseHTTPRequestHandler, bytes], tuple[int, dict[str, str], bytes]]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    handle: Handler


class _Dispatch(BaseHTTPRequestHandler):
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, headers, payload = self.server.handle(self, body)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _serve
    do_POST = _serve

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass


@contextmanager
def serve(handle: Handler) -> Iterator[int]:
    """Serve `handle` on a free port of 127.0.0.1 until the block ends; yields the port."""
    server = _Server(("127.0.0.1", 0), _Dispatch)
    server.handle = handle
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def json_reply(status: int, document: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(document).encode()


# --- a server that accepts and never answers ----------------------------------------------------


@contextmanager
def silent_server() -> Iterator[int]:
    """Accepts connections and holds every request until the block ends: a provider that is up
    but too slow."""
    release = threading.Event()

    def handle(_req: BaseHTTPRequestHandler, _body: bytes) -> tuple[int, dict[str, str], bytes]:
        release.wait(60)
        return json_reply(503, {"error": "released"})

    with serve(handle) as port:
        try:
            yield port
        finally:
            release.set()


# --- the metrics exporter that Prometheus scrapes ---------------------------------------------------

# Per scrape, every revision serves 100 requests: 1 fails (5xx), and the latencies fall 50 under
# 100 ms, 40 more under 250 ms, 9 more under 500 ms and 1 above, summing to 12 s. Rates over any
# window are therefore exact ratios: error rate 0.01, mean latency 120 ms, p50 100 ms, p90 250 ms.
PER_SCRAPE_REQUESTS = 100
PER_SCRAPE_ERRORS = 1
BUCKETS_MS = ((100.0, 50), (250.0, 90), (500.0, 99), (float("inf"), 100))
PER_SCRAPE_SUM_MS = 12_000.0


@dataclass
class Exporter:
    scrapes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, req: BaseHTTPRequestHandler, _body: bytes) -> tuple[int, dict[str, str], bytes]:
        if req.path != "/metrics":
            return 404, {}, b"not found"
        with self.lock:
            self.scrapes += 1
            text = exposition(self.scrapes)
        return 200, {"Content-Type": "text/plain; version=0.0.4"}, text.encode()


def _histogram(name: str, labels: str, n: int, scale: float) -> list[str]:
    lines = []
    for bound, count in BUCKETS_MS:
        le = "+Inf" if bound == float("inf") else f"{bound * scale:g}"
        lines.append(f'{name}_bucket{{{labels},le="{le}"}} {count * n}')
    lines.append(f"{name}_sum{{{labels}}} {PER_SCRAPE_SUM_MS * scale * n:g}")
    lines.append(f"{name}_count{{{labels}}} {PER_SCRAPE_REQUESTS * n}")
    return lines


def exposition(n: int) -> str:
    ok, bad = (PER_SCRAPE_REQUESTS - PER_SCRAPE_ERRORS) * n, PER_SCRAPE_ERRORS * n
    lines = [
        "# TYPE rollwise_test_ratio gauge",
        "rollwise_test_ratio 0.995",
        "# TYPE rollwise_test_multi gauge",
        'rollwise_test_multi{idx="0"} 1',
        'rollwise_test_multi{idx="1"} 2',
        "# TYPE rollwise_test_requests_total counter",
        f"rollwise_test_requests_total {PER_SCRAPE_REQUESTS * n}",
    ]
    istio = 'reporter="destination",destination_service_namespace="shop",destination_service_name="web-canary"'
    lines += [
        "# TYPE istio_requests_total counter",
        f'istio_requests_total{{{istio},response_code="200"}} {ok}',
        f'istio_requests_total{{{istio},response_code="503"}} {bad}',
        "# TYPE istio_request_duration_milliseconds histogram",
        *_histogram("istio_request_duration_milliseconds", istio, n, 1.0),
    ]
    envoy = 'envoy_cluster_name="httproute/shop/web/rule/0/backend/1"'
    lines += [
        "# TYPE envoy_cluster_upstream_rq_total counter",
        f"envoy_cluster_upstream_rq_total{{{envoy}}} {ok + bad}",
        "# TYPE envoy_cluster_upstream_rq_xx counter",
        f'envoy_cluster_upstream_rq_xx{{{envoy},envoy_response_code_class="2"}} {ok}',
        f'envoy_cluster_upstream_rq_xx{{{envoy},envoy_response_code_class="5"}} {bad}',
        "# TYPE envoy_cluster_upstream_rq_time histogram",
        *_histogram("envoy_cluster_upstream_rq_time", envoy, n, 1.0),
    ]
    nginx = 'namespace="shop",service="web-canary"'
    lines += [
        "# TYPE nginx_ingress_controller_requests counter",
        f'nginx_ingress_controller_requests{{{nginx},status="200"}} {ok}',
        f'nginx_ingress_controller_requests{{{nginx},status="502"}} {bad}',
        "# TYPE nginx_ingress_controller_request_duration_seconds histogram",
        *_histogram("nginx_ingress_controller_request_duration_seconds", nginx, n, 0.001),
    ]
    return "\n".join(lines) + "\n"


# --- Prometheus -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunningPrometheus:
    address: str
    exporter: Exporter


def prometheus_binary() -> str | None:
    found = shutil.which("prometheus")
    if found:
        return found
    return "/usr/bin/prometheus" if os.path.exists("/usr/bin/prometheus") else None


def require_prometheus() -> str:
    binary = prometheus_binary()
    if binary is None:
        message = "prometheus is not installed (scripts/system-deps.sh installs it with apt-get)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI must have it")
        pytest.skip(message)
    return binary


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return json.load(reply)


def _query(address: str, promql: str) -> list[Any]:
    url = f"{address}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    data = _get_json(url)
    return list(data["data"]["result"])


@contextmanager
def prometheus(tmp: Path) -> Iterator[RunningPrometheus]:
    """A real Prometheus on 127.0.0.1 scraping the test exporter every second, ready with at least
    three scrapes stored (so that rate() over them has data)."""
    binary = require_prometheus()
    exporter = Exporter()
    with serve(exporter.handle) as exporter_port:
        port = free_port()
        config = tmp / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: exporter\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n"
        )
        log = (tmp / "prometheus.log").open("wb")
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        address = f"http://127.0.0.1:{port}"
        try:

            def ready() -> bool:
                if proc.poll() is not None:
                    raise RuntimeError(f"prometheus exited with {proc.returncode}: see {tmp / 'prometheus.log'}")
                with urllib.request.urlopen(f"{address}/-/ready", timeout=2) as reply:
                    return bool(reply.status == 200)

            wait_for(ready, timeout=60, what="prometheus to be ready")

            def scraped_thrice() -> bool:
                result = _query(address, "count_over_time(rollwise_test_requests_total[5m])")
                return bool(result) and float(result[0]["value"][1]) >= 3

            wait_for(scraped_thrice, timeout=60, what="three scrapes of the exporter")
            yield RunningPrometheus(address, exporter)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


# --- a proxy in front of Prometheus that demands credentials ----------------------------------------


@contextmanager
def auth_proxy(upstream: str, expected_authorization: str) -> Iterator[int]:
    """Forwards GET requests to `upstream` when the Authorization header is the expected one, as
    an authenticating reverse proxy in front of Prometheus does; 401 otherwise."""

    def handle(req: BaseHTTPRequestHandler, _body: bytes) -> tuple[int, dict[str, str], bytes]:
        if req.headers.get("Authorization") != expected_authorization:
            return json_reply(401, {"status": "error", "errorType": "unauthorized", "error": "bad credentials"})
        try:
            with urllib.request.urlopen(upstream + req.path, timeout=10) as reply:
                return reply.status, {"Content-Type": "application/json"}, reply.read()
        except urllib.error.HTTPError as exc:  # Prometheus' own 4xx/5xx answers pass through
            return exc.code, {"Content-Type": "application/json"}, exc.read()

    with serve(handle) as port:
        yield port
