"""Shared pieces for the supervisor tests: small programs run as replicas, templates, a supervisor
that always stops its processes, and an asyncio condition wait (never a fixed sleep)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from rollwise.platforms.local.supervisor import MemoryRecords, ReplicaRecords, ReplicaView, Supervisor, Tuning
from rollwise.platforms.local.supervisor.view import DrainHook
from rollwise.spec.workload import ProcessTemplate

T = TypeVar("T")

PY = sys.executable

# A /healthz server on PORT; answers 503 while the file named by UNHEALTHY exists.
SERVE = """
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        sick = os.path.exists(os.environ.get('UNHEALTHY') or '/nonexistent/x')
        self.send_response(503 if sick else 200)
        self.send_header('Content-Length', '0')
        self.end_headers()
    def log_message(self, *args):
        pass
port = int(os.environ['PORT'])
http.server.HTTPServer(('127.0.0.1', port), H).serve_forever()
"""


def template(*command: str, **fields: Any) -> ProcessTemplate:
    return ProcessTemplate.model_validate({"command": list(command), **fields})


def python(code: str, *args: str, **fields: Any) -> ProcessTemplate:
    return template(PY, "-c", code, *args, **fields)


def demo(version: str = "v1", **fields: Any) -> ProcessTemplate:
    # By name, not path: the supervisor puts this interpreter's bin directory on PATH.
    return template("rollwise-demo", env={"DEMO_VERSION": version}, **fields)


async def until(condition: Callable[[], T | None], timeout: float = 30.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Events:
    """Every view the change hook reported, with when."""

    seen: list[tuple[float, ReplicaView]] = field(default_factory=list)

    def __call__(self, view: ReplicaView) -> None:
        self.seen.append((time.monotonic(), view))

    def of(self, index: int = 0) -> list[tuple[float, ReplicaView]]:
        return [(t, v) for t, v in self.seen if v.index == index]

    def phases(self, index: int = 0) -> list[str]:
        out: list[str] = []
        for _, v in self.of(index):
            if not out or out[-1] != v.phase:
                out.append(v.phase)
        return out


def views(sup: Supervisor, revision: str = "r1", rollout: str = "web") -> list[ReplicaView]:
    return sup.snapshot().get((rollout, revision), [])


def first_where(sup: Supervisor, condition: Callable[[ReplicaView], bool], revision: str = "r1") -> ReplicaView | None:
    """The first replica's view once it satisfies `condition`."""
    vs = views(sup, revision)
    return vs[0] if vs and condition(vs[0]) else None


def all_ready(sup: Supervisor, count: int, revision: str = "r1") -> list[ReplicaView] | None:
    vs = views(sup, revision)
    return vs if len(vs) == count and all(v.ready for v in vs) else None


@contextlib.asynccontextmanager
async def supervisor(
    state: Path,
    records: ReplicaRecords | None = None,
    *,
    drain: DrainHook | None = None,
    tuning: Tuning | None = None,
) -> AsyncIterator[tuple[Supervisor, Events]]:
    events = Events()
    sup = Supervisor(state, records if records is not None else MemoryRecords(), events, drain=drain, tuning=tuning)
    await sup.start()
    try:
        yield sup, events
    finally:
        await sup.shutdown(stop_processes=True)


def run(coro: Any) -> Any:
    return asyncio.run(coro)
