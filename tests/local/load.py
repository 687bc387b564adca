"""A load generator for acceptance under load: asyncio, kept-alive connections to one address on
127.0.0.1, a fixed request rate, bounded by a count and a time, stopping itself.

It runs its own event loop in a thread, so that a test drives the control plane synchronously
while requests keep flowing. Requests are scheduled open-loop (request i is due at start + i/rate
and taken by whichever connection is free), so a slow answer does not lower the rate as long as
another connection is free. Every answer is kept as a `Sample`: when it was sent, its status (0
when no answer came), the version that served it (the demo app's X-Demo-Version header), the
latency, and whether the request carried the extra headers a test asked for."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rollwise.platforms.local.daemon import layout
from rollwise.platforms.local.proxy.client import ProxyAdmin, read_ready
from tests.procs import wait_for

# The proxy's own answers when it cannot reach a revision; the demo app's injected errors are 500.
PLATFORM_STATUSES = frozenset({502, 503, 504})
HeadersFor = Callable[[int], Mapping[str, str] | None]


@dataclass(frozen=True, slots=True)
class Sample:
    sent: float  # time.monotonic() when the request was written
    latency: float  # seconds from writing the request to the end of the answer (or the failure)
    status: int  # 0: no answer (connection refused, reset, closed, timed out)
    version: str  # X-Demo-Version of the answer, "" when it had none (the proxy's own answers)
    tagged: bool  # the request carried the headers of `headers_for`
    error: str = ""

    @property
    def platform_failure(self) -> bool:
        return self.status == 0 or self.status in PLATFORM_STATUSES


class _Closed(Exception):
    """The server closed the connection before a whole answer."""


class LoadGenerator:
    """`rate` requests per second over `connections` kept-alive connections, until `max_requests`
    were sent, `max_seconds` passed, or `stop()`. `headers_for(i)` gives extra headers for request
    number i (None for none): such requests are marked `tagged`."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        rate: float = 250.0,
        connections: int = 8,
        max_requests: int = 1_000_000,
        max_seconds: float = 300.0,
        timeout: float = 30.0,
        path: str = "/",
        headers_for: HeadersFor | None = None,
    ) -> None:
        if host != "127.0.0.1":
            raise ValueError(f"the load generator only targets 127.0.0.1, not {host}")
        self.host = host
        self.port = port
        self.rate = rate
        self.connections = connections
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.timeout = timeout
        self.path = path
        self.headers_for = headers_for
        self.samples: list[Sample] = []
        self.started_at = 0.0
        self.stopped_at = 0.0
        self._issued = 0
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._main, name="load-generator", daemon=True)

    # --- control --------------------------------------------------------------------------------

    def start(self) -> LoadGenerator:
        self.started_at = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sending and wait for the answers in flight (each bounded by `timeout`)."""
        self._stop.set()
        self._thread.join(timeout=self.timeout + 10)

    def __enter__(self) -> LoadGenerator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait_done(self, timeout: float) -> bool:
        return self._done.wait(timeout)

    # --- reading ---------------------------------------------------------------------------------

    def since(self, mark: float, until: float = float("inf")) -> list[Sample]:
        """Answers to requests sent at or after `mark` (and before `until`)."""
        return sorted((s for s in list(self.samples) if mark <= s.sent < until), key=lambda s: s.sent)

    def count_since(self, mark: float) -> int:
        n = 0
        for s in reversed(list(self.samples)):
            if s.sent >= mark:
                n += 1
        return n

    def wait_count_since(self, mark: float, count: int, timeout: float) -> list[Sample]:
        """Wait until `count` answers to requests sent since `mark` are in; return them."""
        deadline = time.monotonic() + timeout
        while True:
            samples = self.since(mark)
            if len(samples) >= count:
                return samples
            if time.monotonic() > deadline or self.done:
                raise AssertionError(
                    f"only {len(samples)} of {count} answers since the mark within {timeout:g}s "
                    f"({len(self.samples)} in all, load {'finished' if self.done else 'running'})"
                )
            time.sleep(0.05)

    @staticmethod
    def platform_failures(samples: list[Sample]) -> Counter[str]:
        """Failures the platform caused, by kind: no answer, or the proxy's own 502/503/504."""
        return Counter(s.error or f"status {s.status}" for s in samples if s.platform_failure)

    @staticmethod
    def versions(samples: list[Sample]) -> Counter[str]:
        return Counter(s.version for s in samples)

    # --- the loop ----------------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        finally:
            self.stopped_at = time.monotonic()
            self._done.set()

    async def _run(self) -> None:
        t0 = time.monotonic()
        workers = [asyncio.create_task(self._worker(t0)) for _ in range(self.connections)]
        await asyncio.gather(*workers)

    def _next_due(self, t0: float) -> tuple[int, float] | None:
        """The next request's number and when it is due, or None when the load is over."""
        i = self._issued
        due = t0 + i / self.rate
        if self._stop.is_set() or i >= self.max_requests or due - t0 > self.max_seconds:
            return None
        self._issued = i + 1
        return i, due

    async def _worker(self, t0: float) -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                nxt = self._next_due(t0)
                if nxt is None:
                    return
                i, due = nxt
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                extra = self.headers_for(i) if self.headers_for is not None else None
                request = self._request(extra)
                sent = time.monotonic()
                try:
                    if conn is None:
                        conn = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), self.timeout)
                    conn[1].write(request)
                    status, version, close = await asyncio.wait_for(self._answer(conn[0]), self.timeout)
                except (OSError, TimeoutError, _Closed, asyncio.IncompleteReadError, ValueError) as exc:
                    self.samples.append(
                        Sample(sent, time.monotonic() - sent, 0, "", bool(extra), f"{type(exc).__name__}: {exc}")
                    )
                    if conn is not None:
                        conn[1].close()
                    conn = None
                    continue
                self.samples.append(Sample(sent, time.monotonic() - sent, status, version, bool(extra)))
                if close:
                    conn[1].close()
                    conn = None
        finally:
            if conn is not None:
                writer = conn[1]
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

    def _request(self, extra: Mapping[str, str] | None) -> bytes:
        lines = [f"GET {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    @staticmethod
    async def _answer(reader: asyncio.StreamReader) -> tuple[int, str, bool]:
        """(status, X-Demo-Version, whether the server closes the connection) of one answer."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            raise _Closed("connection closed before an answer" if not exc.partial else "answer cut short") from None
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            await reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers.get("x-demo-version", ""), headers.get("connection", "").lower() == "close"


# --- waiting on the control plane ---------------------------------------------------------------


def settled(plane: Any, name: str, revision: str, replicas: int, timeout: float = 90.0) -> None:
    """Wait until the rollout runs exactly `replicas` ready replicas, all of `revision`: every
    other revision's replicas have drained and stopped."""
    last: list[tuple[str, str]] = []

    def check() -> bool:
        nonlocal last
        last = [(r["revision"], r["phase"]) for r in plane.rollout(name)["replicas"]]
        return len(last) == replicas and all(rev == revision and phase == "ready" for rev, phase in last)

    try:
        wait_for(check, timeout=timeout, what=f"only {replicas} ready replicas of {revision}")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; replicas: {last}") from None


def rate_of(samples: list[Sample]) -> float:
    """Requests per second sent over the span of `samples`."""
    if len(samples) < 2:
        return 0.0
    span = samples[-1].sent - samples[0].sent
    return (len(samples) - 1) / span if span > 0 else 0.0


def share(samples: list[Sample], version: str) -> float:
    """Percent of `samples` answered by `version`."""
    return 100.0 * sum(1 for s in samples if s.version == version) / len(samples) if samples else 0.0


def proxy_admin(plane: Any, name: str, listener: str = "main") -> ProxyAdmin:
    """The admin client of the rollout's proxy, as the control plane drives it."""
    ready = read_ready(layout.proxy_ready_file(plane.dir, name, listener))
    assert ready is not None, f"no running proxy for {name} ({listener})"
    return ProxyAdmin(ready.admin_port, token=plane.token)


def delete_rollouts(plane: Any) -> None:
    """Delete every rollout of the control plane (its replicas and proxies stop), so that the next
    test under load does not share the cores with idle processes of the previous one."""
    for item in plane.call("GET", "/v1/rollouts")["items"]:
        plane.call("DELETE", f"/v1/rollouts/{item['name']}")


def start(plane: Any, name: str, text: str) -> str:
    """Apply `text` and wait until its rollout is Healthy; its stable revision."""
    plane.apply(text)
    return str(plane.wait(name, lambda s: s["phase"] == "Healthy", f"{name} v1 healthy")["stableRevision"])


def assert_served_by_platform(samples: list[Sample], what: str) -> None:
    """No request failed because of the platform, and the load really was at least 200 req/s."""
    failures = LoadGenerator.platform_failures(samples)
    assert not failures, f"{what}: {sum(failures.values())} of {len(samples)} requests failed: {failures}"
    assert rate_of(samples) >= 200, f"{what}: only {rate_of(samples):.0f} requests/s"
