"""The proxy's Python path per request, without sockets: a client connection and its upstream
connections on fake transports, fed a recorded request and nginx's answer in a loop.

    .venv/bin/python -m tests.proxy.hotpath [REQUESTS]

Prints microseconds per request for requests of 1, 5 and 15 headers (the benchmark's table: 90/10
weights and a header match). It measures what the sockets and the kernel do not: the interpreter's
share, which the end-to-end benchmark (bench/proxy/run.sh) cannot tell from the rest on a busy
machine. Not a test (pytest does not collect it)."""

from __future__ import annotations

import gc
import sys
import time
from typing import Any

from rollwise.platforms.local.proxy.protocol import ClientConnection
from rollwise.platforms.local.proxy.routes import RouteTable
from rollwise.platforms.local.proxy.settings import ProxySettings
from rollwise.platforms.local.proxy.state import ProxyState
from rollwise.platforms.local.proxy.table import compile_table
from rollwise.platforms.local.proxy.upstream import UpstreamConnection

ANSWER = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 26 Nov 2026 15:00:00 GMT\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: 7\r\nConnection: keep-alive\r\n"
    b"X-Upstream: stable\r\n\r\nstable\n"
)
BROWSER = [
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    b"Accept-Language: en-US,en;q=0.9",
    b"Accept-Encoding: gzip, deflate, br",
    b"Cookie: a=1; b=2; session=abcdef0123456789abcdef",
    b"Referer: http://www.example.com/products",
    b"Upgrade-Insecure-Requests: 1",
    b"Sec-Fetch-Dest: document",
    b"Sec-Fetch-Mode: navigate",
    b"Sec-Fetch-Site: same-origin",
    b"Sec-Fetch-User: ?1",
    b"Cache-Control: max-age=0",
    b"DNT: 1",
    b"Priority: u=0, i",
]
TABLE = {
    "upstreams": {"stable": ["127.0.0.1:1"], "canary": ["127.0.0.1:2"]},
    "weights": {"stable": 90, "canary": 10},
    "routes": [{"revision": "canary", "matches": [{"headers": [{"name": "X-Canary", "exact": "always"}]}]}],
}


class Transport:
    """Keeps nothing; remembers which upstream connection wrote last."""

    last: Any = None

    def __init__(self, owner: Any) -> None:
        self.owner = owner

    def write(self, data: bytes) -> None:
        Transport.last = self.owner

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 5555) if name == "peername" else default

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def per_request(requests: int, headers: int) -> float:
    state = ProxyState(None, ProxySettings())  # type: ignore[arg-type]
    state.table = compile_table(RouteTable.from_dict(TABLE), 1, state.pool_for, state.stats_for, state.mirror_stats_for)
    for pool in state.pools.values():
        for _ in range(4):
            conn = UpstreamConnection(pool)
            conn.connection_made(Transport(conn))  # type: ignore[arg-type]
            pool.idle.append(conn)
    client = ClientConnection(state)
    client.connection_made(Transport(client))  # type: ignore[arg-type]
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n" + b"".join(h + b"\r\n" for h in BROWSER[: headers - 1])
    request += b"\r\n"
    for n in (2000, requests):
        gc.collect()
        started = time.perf_counter()
        for _ in range(n):
            client.data_received(request)
            Transport.last.data_received(ANSWER)
        elapsed = time.perf_counter() - started
    served = sum(s.snapshot().requests["2xx"] for s in state.revision_stats.values())
    assert served == 2000 + requests, served
    return elapsed / requests * 1e6


def main() -> None:
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    for headers in (1, 5, 15):
        best = min(per_request(requests, headers) for _ in range(5))
        print(f"{headers:2d} request headers: {best:.2f} µs per request (best of 5 x {requests})")


if __name__ == "__main__":
    main()
