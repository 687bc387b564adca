"""HTTP readiness probes: one GET over a fresh connection, a 2xx or 3xx answer within the timeout
passes (as in Kubernetes). Plain asyncio streams: a probe per replica per second should cost next
to nothing, and needs no connection pool."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

# Read at most this much of the answer: enough to close politely, bounded against chatty apps.
_MAX_BODY = 64 * 1024


async def http_ok(port: int, path: str, timeout: float, host: str = "127.0.0.1") -> bool:
    status_line = b""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                request = (
                    f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: rollwise-probe\r\n"
                    "Accept: */*\r\nConnection: close\r\n\r\n"
                )
                writer.write(request.encode("latin-1"))
                await writer.drain()
                status_line = await reader.readline()
                # Read some of what follows so the app's own write does not meet a reset (and log
                # a traceback); the verdict is already in the status line.
                await reader.read(_MAX_BODY)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
        if not status_line.endswith(b"\n"):
            return False
    return _passes(status_line)


def _passes(status_line: bytes) -> bool:
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return False
    return 200 <= int(parts[1]) < 400


@dataclass
class Readiness:
    """Consecutive-result thresholds: `success_threshold` passes make a replica ready,
    `failure_threshold` failures make a ready one unready."""

    success_threshold: int
    failure_threshold: int
    ready: bool = False
    was_ready: bool = False
    successes: int = 0
    failures: int = 0

    def observe(self, ok: bool) -> bool:
        if ok:
            self.successes += 1
            self.failures = 0
            if not self.ready and self.successes >= self.success_threshold:
                self.ready = self.was_ready = True
        else:
            self.failures += 1
            self.successes = 0
            if self.ready and self.failures >= self.failure_threshold:
                self.ready = False
        return self.ready
