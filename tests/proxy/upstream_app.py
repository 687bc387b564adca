"""Upstreams for the proxy tests: several small HTTP/1.1 servers in one process, each on its own
port and with its own behaviour, written on the standard library so that they share no code with
the proxy under test.

    python tests/proxy/upstream_app.py --ready-file F name[:sleep=MS][:status=N][:variant=V] ...

Each server answers JSON naming itself (header x-upstream too), with a volatile `timestamp` and
`items[*].id`, so mirror comparisons have something to ignore. Paths:
  /chunked       a chunked answer in three chunks
  /close         an answer with no length, ended by closing the connection
  /big?n=N       N bytes of a repeating 0..255 pattern, with a Content-Length
  /echo          the request's body, method and headers (chunked request bodies are decoded)
  /status/N      status N
  /_count        how many requests this server has seen (not counted itself)
Variants: `extra` adds a field to the body; `status500` answers 500; `ctype` changes the
content type."""

from __future__ import annotations

import argparse
import json
import os
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class Settings:
    def __init__(self, spec: str) -> None:
        name, *opts = spec.split(":")
        self.name = name
        self.sleep = 0.0
        self.status = 200
        self.variant = ""
        for opt in opts:
            key, _, value = opt.partition("=")
            if key == "sleep":
                self.sleep = int(value) / 1000
            elif key == "status":
                self.status = int(value)
            elif key == "variant":
                self.variant = value
        self.count = 0
        self.lock = threading.Lock()


def make_handler(s: Settings) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Head and body are separate writes; without this, Nagle holds the body for a delayed ACK.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _body(self) -> bytes:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                out = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return out
                    out += self.rfile.read(size)
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, status: int, doc: Any, ctype: str = "application/json") -> None:
            data = (json.dumps(doc) + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-upstream", s.name)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _serve(self) -> None:
            body = self._body()
            path = self.path.split("?", 1)[0]
            if path == "/_count":
                with s.lock:
                    self._send(200, {"count": s.count})
                return
            with s.lock:
                s.count += 1
            if s.sleep:
                time.sleep(s.sleep)
            if path == "/chunked":
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("x-upstream", s.name)
                self.end_headers()
                if self.command != "HEAD":
                    for part in (b"one-", b"two-", s.name.encode()):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.write(b"0\r\n\r\n")
                return
            if path == "/big":
                size = int(self.path.partition("n=")[2] or 1 << 20)
                block = bytes(range(256)) * 256
                self.send_response(200)
                self.send_header("Content-Length", str(size))
                self.send_header("x-upstream", s.name)
                self.end_headers()
                if self.command != "HEAD":
                    for start in range(0, size, len(block)):
                        self.wfile.write(block[: min(len(block), size - start)])
                return
            if path == "/close":
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(b"until-close-" + s.name.encode())
                self.close_connection = True
                return
            if path == "/echo":
                self._send(
                    200,
                    {
                        "name": s.name,
                        "method": self.command,
                        "body": body.decode("latin-1"),
                        "headers": [[k.lower(), v] for k, v in self.headers.items()],
                    },
                )
                return
            if path.startswith("/status/"):
                self._send(int(path.rsplit("/", 1)[1]), {"name": s.name})
                return
            doc: dict[str, Any] = {
                "name": s.name if s.variant != "samebody" else "same",
                "path": self.path,
                "timestamp": time.time(),
                "items": [{"id": random.random(), "value": i} for i in range(3)],
            }
            if s.variant == "extra":
                doc["extra"] = True
            status = 500 if s.variant == "status500" else s.status
            self._send(status, doc, "text/json" if s.variant == "ctype" else "application/json")

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _serve

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("servers", nargs="+")
    args = parser.parse_args()
    ports: dict[str, int] = {}
    for spec in args.servers:
        settings = Settings(spec)
        server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(settings))
        server.daemon_threads = True
        server.request_queue_size = 256
        # Clients (the proxy) cutting connections is part of the tests; no tracebacks for it.
        server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        ports[settings.name] = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
    tmp = args.ready_file.with_name(args.ready_file.name + ".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "ports": ports}))
    tmp.replace(args.ready_file)
    threading.Event().wait()


if __name__ == "__main__":
    main()
