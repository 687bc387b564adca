"""Real processes on 127.0.0.1: one upstream process for the session (several small servers on
their own ports) and a proxy process per test, driven over its admin port."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.procs import free_port, wait_for

HERE = Path(__file__).parent

# name[:option=value...] — see upstream_app.py.
UPSTREAMS = [
    "a",
    "b",
    "c",
    "same1:variant=samebody",
    "same2:variant=samebody",
    "shadow:variant=samebody",
    "slowshadow:variant=samebody:sleep=1000",
    "extra:variant=extra",
    "s500:variant=status500",
    "ctype:variant=ctype",
    "slow:sleep=3000",
]


def _env() -> dict[str, str]:
    root = str(HERE.parent.parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root + "/src", root, os.environ.get("PYTHONPATH", "")])}


class Upstreams:
    def __init__(self, ports: dict[str, int]) -> None:
        self.ports = ports

    def addr(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def count(self, name: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.ports[name], timeout=10)
        try:
            conn.request("GET", "/_count")
            return int(json.loads(conn.getresponse().read())["count"])
        finally:
            conn.close()


@pytest.fixture(scope="session")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstreams]:
    ready = tmp_path_factory.mktemp("upstreams") / "ready.json"
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "upstream_app.py"), "--ready-file", str(ready), *UPSTREAMS], env=_env()
    )
    try:
        info = wait_for(lambda: ready.exists() and json.loads(ready.read_text()), what="upstreams ready")
        yield Upstreams(info["ports"])
    finally:
        proc.kill()
        proc.wait(timeout=30)


class Proxy:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, admin_port: int) -> None:
        self.proc = proc
        self.port = port
        self.admin_port = admin_port

    def connection(self, timeout: float = 30) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def admin(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=30)
        try:
            data = None if body is None else json.dumps(body).encode()
            conn.request(method, path, body=data)
            resp = conn.getresponse()
            raw = resp.read()
            ctype = resp.getheader("content-type") or ""
            return resp.status, json.loads(raw) if ctype.startswith("application/json") else raw.decode()
        finally:
            conn.close()

    def swap(self, table: dict[str, Any]) -> tuple[int, Any]:
        return self.admin("PUT", "/routes", table)

    def stats(self) -> dict[str, Any]:
        status, doc = self.admin("GET", "/stats")
        assert status == 200
        return dict(doc)

    def metrics(self) -> str:
        status, text = self.admin("GET", "/metrics")
        assert status == 200
        return str(text)


ProxyFactory = Callable[..., Proxy]


@pytest.fixture
def start_proxy(tmp_path: Path) -> Iterator[ProxyFactory]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(table: dict[str, Any] | None, *args: str) -> Proxy:
        ready = tmp_path / f"proxy{len(procs)}.json"
        argv = [sys.executable, "-m", "rollwise.platforms.local.proxy", "--listen", f"127.0.0.1:{free_port()}"]
        argv += ["--admin", "127.0.0.1:0", "--ready-file", str(ready), *args]
        if table is not None:
            routes = tmp_path / f"routes{len(procs)}.json"
            routes.write_text(json.dumps(table))
            argv += ["--routes", str(routes)]
        proc = subprocess.Popen(argv, env=_env(), stderr=subprocess.PIPE)
        procs.append(proc)

        def ready_info() -> dict[str, Any] | None:
            if proc.poll() is not None:
                raise AssertionError(f"proxy exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            return json.loads(ready.read_text()) if ready.exists() else None

        info = wait_for(ready_info, what="proxy ready")
        return Proxy(proc, info["port"], info["admin_port"])

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


def table(weights: dict[str, int], ups: Upstreams, **extra: Any) -> dict[str, Any]:
    """A route table whose revisions are named after the upstream servers that serve them."""
    names = set(weights) | set(extra.pop("also", ()))
    return {"upstreams": {n: [ups.addr(n)] for n in sorted(names)}, "weights": weights, **extra}


def get(
    conn: http.client.HTTPConnection, path: str = "/", headers: dict[str, str] | None = None
) -> tuple[int, str, bytes]:
    """One request on a kept-alive connection: (status, x-upstream, body)."""
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    return resp.status, resp.getheader("x-upstream") or "", body


def free_dead_port() -> int:
    """A port nothing listens on: connections to it are refused."""
    return free_port()
