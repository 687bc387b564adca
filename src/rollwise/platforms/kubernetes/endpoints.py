"""The controller's health and metrics endpoints: `/healthz` answers 200 while the process runs
(a standby waiting for the lease is healthy too: it must not be restarted for waiting), and
`/metrics` is Prometheus text. A few lines of HTTP/1.1 on asyncio streams: the probes send one
small GET per connection."""

from __future__ import annotations

import asyncio
import contextlib
import time

from rollwise.platforms.kubernetes.histogram import Histogram
from rollwise.platforms.kubernetes.operator import Probe


def metrics_text(probe: Probe) -> str:
    c = probe.controller
    lines = [
        "# HELP rollwise_controller_leading 1 while this replica holds the lease and operates.",
        "# TYPE rollwise_controller_leading gauge",
        f"rollwise_controller_leading {1 if probe.leading else 0}",
        "# HELP rollwise_controller_reconciles_total Reconciles run by this replica.",
        "# TYPE rollwise_controller_reconciles_total counter",
        f"rollwise_controller_reconciles_total {c.reconciles if c else 0}",
        "# HELP rollwise_controller_reconcile_failures_total Reconciles that failed and were retried.",
        "# TYPE rollwise_controller_reconcile_failures_total counter",
        f"rollwise_controller_reconcile_failures_total {c.failures if c else 0}",
        "# HELP rollwise_controller_reconcile_causes_total Reconciles by what started them (event, resync, timed).",
        "# TYPE rollwise_controller_reconcile_causes_total counter",
        *(
            f'rollwise_controller_reconcile_causes_total{{cause="{cause}"}} {(c.causes.get(cause, 0) if c else 0)}'
            for cause in ("event", "resync", "timed")
        ),
        "# HELP rollwise_controller_own_write_events_total Watch events of the controller's own writes (no reconcile).",
        "# TYPE rollwise_controller_own_write_events_total counter",
        f"rollwise_controller_own_write_events_total {c.own_events if c else 0}",
        "# HELP rollwise_controller_rollouts Rollouts with a worker in this replica.",
        "# TYPE rollwise_controller_rollouts gauge",
        f"rollwise_controller_rollouts {len(c.workers) if c else 0}",
        "# HELP rollwise_controller_uptime_seconds Seconds since this replica started.",
        "# TYPE rollwise_controller_uptime_seconds gauge",
        f"rollwise_controller_uptime_seconds {time.monotonic() - probe.started_at:.3f}",
        *(c.durations if c else Histogram()).lines(
            "rollwise_controller_reconcile_duration_seconds", "Seconds per reconcile (API calls included)."
        ),
    ]
    return "\n".join(lines) + "\n"


async def serve(probe: Probe, port: int, path: str, host: str = "0.0.0.0") -> asyncio.Server:
    """Serve `path` on `port`: /healthz or /metrics (on every interface: the kubelet probes the
    Pod's IP)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                request = await reader.readuntil(b"\r\n\r\n")
            method, _, rest = request.partition(b" ")
            target = rest.split(b" ", 1)[0].decode("latin-1")
            if method not in (b"GET", b"HEAD") or target.split("?", 1)[0] != path:
                status, body, kind = "404 Not Found", "not found\n", "text/plain"
            elif path == "/metrics":
                status, body, kind = "200 OK", metrics_text(probe), "text/plain; version=0.0.4"
            else:
                status, body, kind = "200 OK", "ok\n", "text/plain"
            data = body.encode()
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + (b"" if method == b"HEAD" else data))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    return await asyncio.start_server(handle, host, port)
