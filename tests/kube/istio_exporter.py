"""A small exporter of Istio's standard metrics, as a sidecar of each revision would report them
(reporter="destination", destination_workload = the revision's ReplicaSet), on a free port of
127.0.0.1, and a load that "serves requests" by advancing its counters: a fixed number of requests
per second split by the Rollout's current weights, a set share of a revision's answered with 500."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BOUNDS_MS = (5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0)
# How a healthy revision's answers spread: (latency in ms, share). 5% are slower than 25 ms, so
# stable's p95 (the dynamic canary's latency threshold) is the 25 ms bound.
HEALTHY = ((4.0, 0.5), (8.0, 0.3), (20.0, 0.15), (40.0, 0.04), (80.0, 0.01))


@dataclass
class Workload:
    ok: int = 0
    errors: int = 0
    sum_ms: float = 0.0
    served: list[tuple[int, tuple[tuple[float, float], ...]]] = field(default_factory=list)

    def cumulative(self, bound: float) -> int:
        """Requests answered within `bound` ms (shares rounded per batch shape, exactly over time)."""
        return sum(round(n * sum(share for ms, share in shape if ms <= bound)) for n, shape in self.served)


class IstioExporter:
    def __init__(self, namespace: str = "default") -> None:
        self.namespace = namespace
        self.workloads: dict[str, Workload] = {}
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def serve(
        self, requests: int, errors: int, workload: str, shape: tuple[tuple[float, float], ...] = HEALTHY
    ) -> None:
        with self.lock:
            w = self.workloads.setdefault(workload, Workload())
            w.ok += requests - errors
            w.errors += errors
            if w.served and w.served[-1][1] == shape:
                w.served[-1] = (w.served[-1][0] + requests, shape)
            else:
                w.served.append((requests, shape))
            w.sum_ms += requests * sum(ms * share for ms, share in shape)

    def text(self) -> str:
        lines = [
            "# TYPE istio_requests_total counter",
            "# TYPE istio_request_duration_milliseconds histogram",
        ]
        with self.lock:
            for name, w in sorted(self.workloads.items()):
                base = (
                    f'reporter="destination",destination_workload_namespace="{self.namespace}",'
                    f'destination_workload="{name}",destination_service_name="web"'
                )
                lines.append(f'istio_requests_total{{{base},response_code="200"}} {w.ok}')
                lines.append(f'istio_requests_total{{{base},response_code="500"}} {w.errors}')
                total = w.ok + w.errors
                for bound in BOUNDS_MS:
                    n = min(total, w.cumulative(bound))
                    lines.append(f'istio_request_duration_milliseconds_bucket{{{base},le="{bound:g}"}} {n}')
                lines.append(f'istio_request_duration_milliseconds_bucket{{{base},le="+Inf"}} {total}')
                lines.append(f"istio_request_duration_milliseconds_sum{{{base}}} {w.sum_ms}")
                lines.append(f"istio_request_duration_milliseconds_count{{{base}}} {total}")
        return "\n".join(lines) + "\n"


@contextlib.contextmanager
def running_exporter(port: int, namespace: str = "default") -> Iterator[IstioExporter]:
    exporter = IstioExporter(namespace)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = exporter.text().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    exporter.server = server
    thread = threading.Thread(target=server.serve_forever, name="istio-exporter", daemon=True)
    thread.start()
    try:
        yield exporter
    finally:
        server.shutdown()
        server.server_close()


@contextlib.asynccontextmanager
async def load(
    exporter: IstioExporter,
    weights: Callable[[], Mapping[str, int]],
    workload: Callable[[str], str],
    error_share: Mapping[str, float],
    per_second: int = 300,
) -> AsyncIterator[None]:
    """Every 0.1 s, per_second/10 requests split by `weights()` ({revision: percent}); revision r
    answers error_share[r] of its requests with 500 (exactly, over time)."""
    served: dict[str, int] = {}
    failed: dict[str, int] = {}

    async def loop() -> None:
        while True:
            for revision, weight in weights().items():
                n = round(per_second / 10 * weight / 100)
                if n <= 0:
                    continue
                served[revision] = served.get(revision, 0) + n
                due = int(served[revision] * error_share.get(revision, 0.0))
                errors = due - failed.get(revision, 0)
                failed[revision] = due
                exporter.serve(n, errors, workload(revision))
            await asyncio.sleep(0.1)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
