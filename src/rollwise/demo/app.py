"""The demo service. Configured by environment (as the local platform and Kubernetes pass it):

PORT               port to listen on (127.0.0.1 unless DEMO_HOST says otherwise)
DEMO_VERSION       version reported in the body and the X-Demo-Version header
DEMO_ERROR_RATE    share of requests answered 500, spread evenly (0.3 = 3 in every 10)
DEMO_LATENCY_MS    added delay per request
DEMO_FLAGS_FILE    flagd document (else FLAGD_OFFLINE_FLAG_SOURCE_PATH, as Rollwise passes it);
                   the flag `new-greeting` (boolean) changes the greeting

/healthz answers 200 and is never slowed or failed, so readiness reflects the process, not the
injected faults."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Settings:
    version: str
    error_rate: float
    latency_s: float
    flags_file: Path | None

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Settings:
        rate = float(env.get("DEMO_ERROR_RATE", "0") or 0)
        if not 0 <= rate <= 1:
            raise ValueError(f"DEMO_ERROR_RATE must be between 0 and 1 (got {rate})")
        flags = env.get("DEMO_FLAGS_FILE") or env.get("FLAGD_OFFLINE_FLAG_SOURCE_PATH")
        return cls(
            version=env.get("DEMO_VERSION", "v1"),
            error_rate=rate,
            latency_s=float(env.get("DEMO_LATENCY_MS", "0") or 0) / 1000,
            flags_file=Path(flags) if flags else None,
        )


class ErrorSchedule:
    """Fails exactly `rate` of requests, evenly spread, so tests and demos see the rate they asked
    for without randomness."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.count = 0
        self.lock = threading.Lock()

    def next_fails(self) -> bool:
        with self.lock:
            self.count += 1
            return int(self.count * self.rate) > int((self.count - 1) * self.rate)


def flag_enabled(path: Path | None, key: str) -> bool:
    """The flag's default variant value; a missing file, flag or a DISABLED flag reads as off."""
    if path is None:
        return False
    try:
        doc: Any = json.loads(path.read_text())
        flag = doc["flags"][key]
        if flag.get("state", "ENABLED") != "ENABLED":
            return False
        return bool(flag["variants"][flag["defaultVariant"]])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def make_handler(settings: Settings) -> type[BaseHTTPRequestHandler]:
    errors = ErrorSchedule(settings.error_rate)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "rollwise-demo"
        # Head and body go out in two writes; with Nagle the body would wait for the client's
        # delayed ACK (~40 ms per keep-alive request).
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass  # per-request logging would dominate the cost of a demo request

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = (json.dumps(body) + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Demo-Version", settings.version)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if self.path.split("?", 1)[0] == "/healthz":
                self._send(200, {"status": "ok", "version": settings.version})
                return
            if settings.latency_s:
                time.sleep(settings.latency_s)
            if errors.next_fails():
                self._send(500, {"error": "injected failure", "version": settings.version})
                return
            greeting = "hello, new world" if flag_enabled(settings.flags_file, "new-greeting") else "hello"
            self._send(200, {"version": settings.version, "greeting": greeting, "path": self.path})

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _serve

    return Handler


def serve(settings: Settings, host: str, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), make_handler(settings))
    server.daemon_threads = True
    return server


def main() -> None:
    try:
        settings = Settings.from_env(dict(os.environ))
        port = int(os.environ.get("PORT", "8080"))
    except ValueError as exc:
        sys.exit(f"rollwise-demo: {exc}")
    server = serve(settings, os.environ.get("DEMO_HOST", "127.0.0.1"), port)
    # SIGTERM ends the process cleanly: in-flight requests finish, then the socket closes.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
