"""The supervisor's parts without replicas: argv expansion, environment, backoff, readiness
thresholds, /proc parsing, records, log paths and rotation, and the HTTP probe against in-process
servers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from rollwise.platforms.local.supervisor import (
    BackoffPolicy,
    JsonFileRecords,
    MemoryRecords,
    ReplicaRecord,
    command,
    logs,
    procfs,
)
from rollwise.platforms.local.supervisor.probe import Readiness, http_ok
from tests.supervisor.helpers import template


def test_expand_follows_kubernetes_rules() -> None:
    env = {"PORT": "8080", "NAME": "a b"}
    assert command.expand("--port=$(PORT)", env) == "--port=8080"
    assert command.expand("$(NAME)", env) == "a b"
    assert command.expand("$$(PORT)", env) == "$(PORT)"
    assert command.expand("$(MISSING)", env) == "$(MISSING)"
    assert command.expand("$PORT ${PORT} $(", env) == "$PORT ${PORT} $("
    assert command.expand("cost$$", env) == "cost$"


def test_environment_precedence_and_path() -> None:
    tpl = template("app", env={"A": "template", "B": "template", "PORT": "1"}, portEnv="PORT")
    env = command.replica_env(
        tpl,
        {"B": "extra", "ROLLWISE_REVISION": "spoofed"},
        rollout="web",
        revision="r1",
        index=2,
        port=5000,
        base={"A": "base", "C": "base", "PATH": "/usr/bin"},
    )
    assert env["A"] == "template" and env["B"] == "extra" and env["C"] == "base"
    assert env["PORT"] == "5000"
    assert (env["ROLLWISE_ROLLOUT"], env["ROLLWISE_REVISION"], env["ROLLWISE_REPLICA"]) == ("web", "r1", "2")
    assert env["PATH"] == f"{Path(sys.executable).parent}{os.pathsep}/usr/bin"
    custom_port = template("app", portEnv="HTTP_PORT")
    custom = command.replica_env(custom_port, {}, rollout="w", revision="r", index=0, port=7, base={})
    assert custom["HTTP_PORT"] == "7" and "PORT" not in custom
    again = command.replica_env(tpl, {}, rollout="web", revision="r1", index=0, port=1, base={"PATH": env["PATH"]})
    assert again["PATH"] == env["PATH"]  # not prepended twice


def test_backoff_doubles_to_the_cap() -> None:
    policy = BackoffPolicy()
    assert [policy.delay(n) for n in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert policy.delay(10_000) == 60
    assert [policy.crash_looping(n) for n in range(5)] == [False, False, False, True, True]
    assert policy.reset_after == 60


def test_readiness_thresholds() -> None:
    r = Readiness(success_threshold=2, failure_threshold=3)
    assert [r.observe(ok) for ok in (True, False, True, True)] == [False, False, False, True]
    assert [r.observe(ok) for ok in (False, False, True, False, False, False)] == [True, True, True, True, True, False]
    assert r.was_ready and [r.observe(True), r.observe(True)] == [False, True]


def test_proc_stat_parsing_survives_odd_names() -> None:
    fields = " ".join(str(n) for n in range(3, 53)).replace("3", "S", 1)
    stat = procfs.parse_stat(f"4242 (a b) (c)) {fields}")
    assert stat.state == "S" and stat.pgrp == 5 and stat.start_time == 22


def test_process_identity() -> None:
    own = procfs.start_time(os.getpid())
    assert own is not None and procfs.is_running(os.getpid(), own)
    assert not procfs.is_running(os.getpid(), own + 1)  # same pid, other start time: reused
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    started = procfs.start_time(proc.pid)
    assert started is not None
    proc.wait()
    assert not procfs.is_running(proc.pid, started)
    assert procfs.pid_is_ours(proc.pid, started)  # nobody has the number (or it is still ours)


@pytest.mark.parametrize("kind", ["memory", "json"])
def test_records_round_trip(kind: str, tmp_path: Path) -> None:
    records = MemoryRecords() if kind == "memory" else JsonFileRecords(tmp_path / "replicas.json")
    rec = ReplicaRecord("web", "r1", 0, template("app").model_dump(by_alias=True), {"X": "1"}, pid=12, port=80)
    records.save(rec)
    records.save(ReplicaRecord("web", "r1", 1, {"command": ["b"]}, stopping=True, start_time=99, ready_since=1.5))
    rec.pid = 13  # the store holds a copy, not our object
    listed = {r.index: r for r in records.list()}
    assert listed[0].pid == 12 and listed[0].extra_env == {"X": "1"} and listed[0].template == rec.template
    assert listed[1].stopping and listed[1].start_time == 99 and listed[1].ready_since == 1.5
    records.delete("web", "r1", 0)
    records.delete("web", "r1", 7)
    assert [r.index for r in records.list()] == [1]
    if kind == "json":
        assert [p.name for p in tmp_path.iterdir()] == ["replicas.json"]  # no temp files left


def test_log_paths_refuse_escapes(tmp_path: Path) -> None:
    assert logs.log_path(tmp_path, "web", "6f1c2d", 3) == tmp_path / "logs" / "web" / "6f1c2d" / "3.log"
    for bad in ("..", "a/b", "", ".hidden"):
        with pytest.raises(ValueError):
            logs.log_path(tmp_path, bad, "r1", 0)


def test_rotation_keeps_one_old_file(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text("a" * 100)
    assert not logs.rotate_if_large(path, 100)
    with path.open("a") as f:
        f.write("b")
    assert logs.rotate_if_large(path, 100)
    assert path.read_text() == "" and logs.rotated_path(path).read_text() == "a" * 100 + "b"
    path.write_text("c" * 200)
    assert logs.rotate_if_large(path, 100)
    assert logs.rotated_path(path).read_text() == "c" * 200
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.log", "0.log.1"]


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def answering(status_line: bytes) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(status_line + b"\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    return handle


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # never answers


async def probe_against(handler: Handler, path: str = "/healthz") -> tuple[bool, float]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        loop = asyncio.get_running_loop()
        started = loop.time()
        ok = await http_ok(port, path, timeout=0.5)
        return ok, loop.time() - started


def test_http_probe_verdicts() -> None:
    async def scenario() -> None:
        assert (await probe_against(answering(b"HTTP/1.1 200 OK")))[0]
        assert (await probe_against(answering(b"HTTP/1.0 302 Found")))[0]
        assert not (await probe_against(answering(b"HTTP/1.1 503 Service Unavailable")))[0]
        assert not (await probe_against(answering(b"SSH-2.0-OpenSSH")))[0]
        ok, took = await probe_against(silent)
        assert not ok and took < 2
        assert not await http_ok(command.free_port(), "/", timeout=1)

    asyncio.run(scenario())
