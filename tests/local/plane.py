"""A local control plane in its own process (`rollwise up --foreground`) for the tests to drive
over real HTTP on 127.0.0.1, kill and restart; and a load generator through a proxy endpoint."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from tests.procs import wait_for

T = TypeVar("T")
ROLLWISE = [sys.executable, "-m", "rollwise.cli"]
# Generous: this machine is small and shared, and a rollout is several processes starting.
DEADLINE = 90.0


class Plane:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.api = ""
        self.token = ""

    # --- the control plane process --------------------------------------------------------------

    def start(self) -> Plane:
        log = open(self.dir.parent / f"{self.dir.name}-daemon.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*ROLLWISE, "up", "--foreground", "--dir", str(self.dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        proc = self.proc

        def ready() -> dict[str, Any] | None:
            if proc.poll() is not None:
                raise AssertionError(f"the control plane exited with {proc.returncode}: {self.daemon_log()}")
            info = json.loads((self.dir / "daemon.json").read_text())
            return info if info.get("pid") == proc.pid else None

        info = wait_for(ready, timeout=DEADLINE, what="the control plane")
        self.api = info["api"]
        self.token = (self.dir / "token").read_text().strip()
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Stop the control plane with every proxy and replica (`rollwise down`); a control plane
        that was killed is started again first, so that it adopts and stops what is left."""
        if self.proc is None:
            return
        if self.proc.poll() is not None:
            self.start()
        with contextlib.suppress(Exception):
            self.call("POST", "/v1/shutdown", {"stopProcesses": True})
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def daemon_log(self) -> str:
        path = self.dir.parent / f"{self.dir.name}-daemon.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    # --- the API ------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        address = urlsplit(self.api)
        conn = http.client.HTTPConnection(address.hostname, address.port, timeout=120)
        headers = {}
        if token is not None or self.token:
            headers["Authorization"] = f"Bearer {self.token if token is None else token}"
        data = None if body is None else json.dumps(body).encode()
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        ctype = resp.getheader("content-type") or ""
        return resp.status, json.loads(raw) if ctype.startswith("application/json") else raw.decode()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        status, doc = self.request(method, path, body)
        assert status == 200, (status, doc)
        return doc

    def apply(self, text: str, file: str = "test.yaml") -> Any:
        return self.call("POST", "/v1/apply", {"yaml": text, "file": file})

    def rollout(self, name: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/v1/rollouts/{name}"))

    def summary(self, name: str) -> dict[str, Any]:
        return dict(self.rollout(name)["summary"])

    def command(self, name: str, command: str, **extra: Any) -> tuple[int, Any]:
        return self.request("POST", f"/v1/rollouts/{name}/commands", {"command": command, **extra})

    def wait(
        self, name: str, condition: Callable[[dict[str, Any]], bool], what: str, timeout: float = DEADLINE
    ) -> dict[str, Any]:
        """Wait until the rollout's summary satisfies `condition`; say where it was if it never does."""
        last: dict[str, Any] = {}

        def check() -> dict[str, Any] | None:
            nonlocal last
            last = self.summary(name)
            return last if condition(last) else None

        try:
            return wait_for(check, timeout=timeout, what=what)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; last summary: {last}; log: {self.daemon_log()[-1500:]}") from None

    def endpoint(self, name: str, listener: str = "main") -> tuple[str, int]:
        url = urlsplit(self.summary(name)["endpoints"][listener])
        assert url.hostname is not None and url.port is not None
        return url.hostname, url.port

    # --- the CLI ------------------------------------------------------------------------------

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*ROLLWISE, *args, "--dir", str(self.dir)] if "--" not in args else _with_dir(list(args), self.dir),
            capture_output=True,
            text=True,
            timeout=180,
            env={**os.environ, "COLUMNS": "200"},
        )
        if check:
            assert result.returncode == 0, (args, result.returncode, result.stdout, result.stderr)
        return result


def _with_dir(args: list[str], state_dir: Path) -> list[str]:
    """Options go before `--`, after which everything is the replica's command line."""
    cut = args.index("--")
    return [*ROLLWISE, *args[:cut], "--dir", str(state_dir), *args[cut:]]


class Load:
    """Requests through a proxy endpoint from a few threads, each on a kept-alive connection,
    counting answers by status and by version (the demo app's X-Demo-Version header) and every
    failure to get an answer. `rate` caps requests per second per thread: the machine is small."""

    def __init__(self, host: str, port: int, threads: int = 2, rate: float = 80.0) -> None:
        self.address = (host, port)
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        self.rate = rate
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.statuses: Counter[int] = Counter()
        self.versions: Counter[str] = Counter()
        self.failures: list[str] = []
        self.log: list[tuple[float, int, str]] = []  # (time, status, version)
        self.total = 0

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=30)

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        gap = 1.0 / self.rate
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(*self.address, timeout=30)
                conn.request("GET", "/")
                resp = conn.getresponse()
                resp.read()
                status, version = resp.status, resp.getheader("x-demo-version") or ""
                if resp.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                with self.lock:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                if conn is not None:
                    conn.close()
                conn = None
                continue
            with self.lock:
                self.statuses[status] += 1
                self.versions[version] += 1
                self.log.append((time.monotonic(), status, version))
                self.total += 1
            spare = gap - (time.monotonic() - started)
            if spare > 0:
                time.sleep(spare)

    def served(self) -> int:
        with self.lock:
            return self.total

    def platform_failures(self) -> list[str]:
        """Failures caused by the platform: no answer at all, or the proxy's own 502/503/504.
        The demo app's injected 500s are the app's."""
        with self.lock:
            return self.failures + [f"status {s} x{n}" for s, n in self.statuses.items() if s in (502, 503, 504)]

    def since(self, t: float) -> list[tuple[float, int, str]]:
        with self.lock:
            return [entry for entry in self.log if entry[0] >= t]
