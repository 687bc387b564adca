"""The demo service. Configured by environment (as the local platform and Kubernetes pass it):

PORT               port to listen on (127.0.0.1 unless DEMO_HOST says otherwise)
DEMO_VERSION       version reported in the body and the X-Demo-Version header
DEMO_ERROR_RATE    share of requests answered 500, spread evenly (0.3 = 3 in every 10)
DEMO_LATENCY_MS    added delay per request
DEMO_FLAGS_FILE    flagd document (else FLAGD_OFFLINE_FLAG_SOURCE_PATH, as Rollwise passes it), read
                   through the OpenFeature SDK and its flagd provider in in-process file mode (the
                   provider re-reads the file when it changes); the boolean flag `new-greeting`,
                   evaluated for the user named by the `X-User` header or the `user` query
                   parameter (the targeting key), changes the greeting
DEMO_FLAGGED_ERROR_RATE  share of requests answered 500 among those on the flagged path (the new
                   greeting), spread evenly: a bug behind a flag, for flag rollouts to catch

/healthz answers 200 and is never slowed or failed, so readiness reflects the process, not the
injected faults."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Settings:
    version: str
    error_rate: float
    latency_s: float
    flags_file: Path | None
    flagged_error_rate: float = 0.0

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Settings:
        rate = float(env.get("DEMO_ERROR_RATE", "0") or 0)
        if not 0 <= rate <= 1:
            raise ValueError(f"DEMO_ERROR_RATE must be between 0 and 1 (got {rate})")
        flagged = float(env.get("DEMO_FLAGGED_ERROR_RATE", "0") or 0)
        if not 0 <= flagged <= 1:
            raise ValueError(f"DEMO_FLAGGED_ERROR_RATE must be between 0 and 1 (got {flagged})")
        flags = env.get("DEMO_FLAGS_FILE") or env.get("FLAGD_OFFLINE_FLAG_SOURCE_PATH")
        return cls(
            version=env.get("DEMO_VERSION", "v1"),
            error_rate=rate,
            latency_s=float(env.get("DEMO_LATENCY_MS", "0") or 0) / 1000,
            flags_file=Path(flags) if flags else None,
            flagged_error_rate=flagged,
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


class Flags:
    """Feature flags through the standard OpenFeature SDK with the flagd provider reading the
    file in-process: the same code works against a mounted ConfigMap on Kubernetes. A missing
    file, flag or a DISABLED flag reads as off (the default passed to the SDK)."""

    def __init__(self, path: Path | None) -> None:
        self.client: Any = None
        if path is None:
            return
        # Imported only when flags are used: the SDK and provider take about a second to import.
        from openfeature import api
        from openfeature.contrib.provider.flagd import FlagdProvider
        from openfeature.contrib.provider.flagd.config import ResolverType

        # The provider logs a traceback at every poll (twice a second) while the file is missing
        # or bad: once per distinct message is enough for a replica's log.
        logging.getLogger("openfeature.contrib").addFilter(_OncePerMessage())
        provider = FlagdProvider(resolver_type=ResolverType.FILE, offline_flag_source_path=str(path))
        try:
            # Evaluations before the provider is ready answer the default: wait before serving.
            api.set_provider_and_wait(provider, domain="rollwise-demo")
        except Exception as exc:  # no file yet: the provider keeps polling for it
            print(
                f"rollwise-demo: flags from {path} not readable yet ({type(exc).__name__}); off until they are",
                file=sys.stderr,
            )
        self.client = api.get_client("rollwise-demo")

    def enabled(self, key: str, user: str | None) -> bool:
        if self.client is None:
            return False
        from openfeature.evaluation_context import EvaluationContext

        context = EvaluationContext(targeting_key=user) if user else None
        return bool(self.client.get_boolean_value(key, False, context))


class _OncePerMessage(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        record.exc_info, record.exc_text = None, None
        return True


def user_of(path: str, headers: Any) -> str | None:
    user = headers.get("X-User")
    if user:
        return str(user)
    query = parse_qs(urlsplit(path).query)
    return query["user"][0] if query.get("user") else None


def make_handler(settings: Settings, flags: Flags | None = None) -> type[BaseHTTPRequestHandler]:
    errors = ErrorSchedule(settings.error_rate)
    flagged_errors = ErrorSchedule(settings.flagged_error_rate)
    reader = flags if flags is not None else Flags(settings.flags_file)

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
            new = reader.enabled("new-greeting", user_of(self.path, self.headers))
            if new and flagged_errors.next_fails():
                self._send(500, {"error": "injected failure behind new-greeting", "version": settings.version})
                return
            greeting = "hello, new world" if new else "hello"
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
