"""The admin interface, on its own port (never the data port): metrics, stats, the shadow report,
and reading or swapping the route table.

GET  /healthz   200 "ok"
GET  /metrics   Prometheus text exposition
GET  /stats     the snapshot as JSON
GET  /shadow    mirror counters, differences by kind and sampled differences
GET  /routes    {"generation": n, "table": {...}} (table is null before the first swap)
PUT  /routes    swap in the JSON table in the body: 200 {"generation": n}, or 400 with the
                problems (the old table keeps serving)

When a token is configured every path but /healthz needs `Authorization: Bearer <token>`.
Admin traffic is rare, so this side favours plainness over speed."""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Callable
from typing import Any

import httptools

from rollwise.platforms.local.proxy.responses import status_line

Handler = Callable[[str, str, bytes], tuple[int, str, bytes]]


def json_answer(status: int, doc: Any) -> tuple[int, str, bytes]:
    return status, "application/json", (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


class AdminConnection(asyncio.Protocol):
    def __init__(self, handler: Handler, token: str | None, max_body: int = 4 << 20) -> None:
        self.handler = handler
        self.token = token
        self.max_body = max_body
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.auth = b""
        self.body: list[bytes] = []
        self.size = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._send(400, "text/plain", f"malformed request: {exc}\n".encode(), close=True)

    def on_message_begin(self) -> None:
        self.url = b""
        self.auth = b""
        self.body = []
        self.size = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"authorization":
            self.auth = value

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size <= self.max_body:
            self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode("latin-1")
        path = httptools.parse_url(self.url).path.decode("latin-1")
        keep_alive = self.parser.should_keep_alive()
        if self.size > self.max_body:
            self._send(413, "text/plain", b"body too large\n", close=True)
            return
        if self.token is not None and path != "/healthz":
            expected = b"Bearer " + self.token.encode()
            if not hmac.compare_digest(self.auth, expected):
                self._send(401, "text/plain", b"missing or wrong bearer token\n", close=not keep_alive)
                return
        try:
            status, ctype, payload = self.handler(method, path, b"".join(self.body))
        except Exception as exc:  # the admin side must answer, whatever a handler does
            status, ctype, payload = 500, "text/plain", f"internal error: {exc!r}\n".encode()
        self._send(status, ctype, payload, close=not keep_alive)

    def _send(self, status: int, ctype: str, payload: bytes, *, close: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        head = (
            status_line(status)
            + f"content-type: {ctype}\r\ncontent-length: {len(payload)}\r\n".encode()
            + (b"connection: close\r\n" if close else b"")
            + b"\r\n"
        )
        self.transport.write(head + payload)
        if close:
            self.transport.close()
