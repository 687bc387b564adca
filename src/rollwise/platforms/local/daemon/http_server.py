"""A small HTTP/1.1 server for the control plane's API: asyncio streams, httptools to parse, one
coroutine per connection handling its requests in order (keep-alive, no pipelining tricks). The
API carries a few requests a second, so plainness wins over speed here."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

import httptools

from rollwise.platforms.local.proxy.responses import status_line

log = logging.getLogger("rollwise.daemon.http")

MAX_BODY = 8 << 20
MAX_HEAD = 64 << 10


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        if not self.body:
            return {}
        return json.loads(self.body)


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, doc: Any) -> Response:
        return cls(status, (json.dumps(doc, indent=2) + "\n").encode())

    @classmethod
    def error(cls, status: int, message: str, **extra: Any) -> Response:
        return cls.json(status, {"error": message, **extra})

    @classmethod
    def text(cls, status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> Response:
        return cls(status, text.encode(), content_type)


Handler = Callable[[Request], Awaitable[Response]]


class _Parsed:
    """httptools callbacks collecting complete requests."""

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.done: list[tuple[Request, bool]] = []
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.size = 0
        self.head = 0

    def on_message_begin(self) -> None:
        self._reset()

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head += len(url)
        if self.head > MAX_HEAD:
            raise ValueError("request head too large")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head += len(name) + len(value)
        if self.head > MAX_HEAD:
            raise ValueError("request head too large")
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > MAX_BODY:
            raise ValueError(f"request body larger than {MAX_BODY} bytes")
        self.body.append(body)

    def on_message_complete(self) -> None:
        url = httptools.parse_url(self.url)
        query = dict(parse_qsl((url.query or b"").decode("latin-1"), keep_blank_values=True))
        request = Request(
            method=self.parser.get_method().decode("latin-1"),
            path=unquote(url.path.decode("latin-1")),
            query=query,
            headers=self.headers,
            body=b"".join(self.body),
        )
        self.done.append((request, self.parser.should_keep_alive()))


class HttpServer:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._serve, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        parsed = _Parsed()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                try:
                    parsed.parser.feed_data(data)
                except (httptools.HttpParserError, ValueError) as exc:
                    await self._write(writer, Response.error(400, f"bad request: {exc}"), keep_alive=False)
                    return
                while parsed.done:
                    request, keep_alive = parsed.done.pop(0)
                    response = await self._handle(request)
                    await self._write(writer, response, keep_alive)
                    if not keep_alive:
                        return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handle(self, request: Request) -> Response:
        try:
            return await self.handler(request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the API must answer, whatever went wrong inside
            log.exception("%s %s failed", request.method, request.path)
            return Response.error(500, f"internal error: {type(exc).__name__}: {exc}")

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, response: Response, keep_alive: bool) -> None:
        head = status_line(response.status)
        head += f"content-type: {response.content_type}\r\ncontent-length: {len(response.body)}\r\n".encode()
        for name, value in response.headers.items():
            head += f"{name}: {value}\r\n".encode("latin-1")
        if not keep_alive:
            head += b"connection: close\r\n"
        writer.write(head + b"\r\n" + response.body)
        await writer.drain()
