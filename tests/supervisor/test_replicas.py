"""Replicas as real processes on 127.0.0.1: launch contract, readiness, scaling."""

from __future__ import annotations

import http.client
import json
import os
import sys
from pathlib import Path

from rollwise.platforms.local.supervisor import procfs
from tests.supervisor.helpers import SERVE, all_ready, demo, python, run, supervisor, until, views

DUMP = """
import json, os, sys
with open(os.environ['OUT'], 'w') as f:
    json.dump({'argv': sys.argv[1:], 'env': dict(os.environ), 'cwd': os.getcwd()}, f)
print('to stdout', flush=True)
print('to stderr', file=sys.stderr, flush=True)
"""


def get(port: int, path: str = "/") -> tuple[int, str | None]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("X-Demo-Version")
    finally:
        conn.close()


def test_launch_contract(tmp_path: Path) -> None:
    """argv is not shell-split, $(NAME) expands from the replica's env, the env carries the port and
    identity, output goes to the replica's log."""
    out = tmp_path / "dump.json"
    workdir = tmp_path / "work"
    workdir.mkdir()
    tpl = python(
        DUMP + SERVE,
        "two words; echo injected",
        "$(PORT)",
        "$$(PORT)",
        "$(NOT_SET)",
        "r=$(ROLLWISE_REPLICA)",
        env={"GREETING": "hi there"},
        workingDir=str(workdir),
    )

    async def scenario() -> None:
        async with supervisor(tmp_path / "state") as (sup, _):
            await sup.converge("web", "r1", tpl, 1, extra_env={"OUT": str(out), "FLAGS_FILE": "/f.json"})
            (view,) = await until(lambda: all_ready(sup, 1), what="readiness")
            dump = json.loads(out.read_text())
            assert dump["argv"] == ["two words; echo injected", str(view.port), "$(PORT)", "$(NOT_SET)", "r=0"]
            env = dump["env"]
            assert env["PORT"] == str(view.port)
            assert (env["ROLLWISE_ROLLOUT"], env["ROLLWISE_REVISION"], env["ROLLWISE_REPLICA"]) == ("web", "r1", "0")
            assert env["GREETING"] == "hi there" and env["FLAGS_FILE"] == "/f.json"
            assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
            assert dump["cwd"] == str(workdir)
            # Its own session: the control plane's terminal signals do not reach it.
            stat = procfs.read_stat(view.pid or 0)
            assert stat is not None and stat.pgrp == view.pid and os.getsid(view.pid or 0) == view.pid
            log = sup.log_path("web", "r1", 0)
            text = await until(lambda: log.read_text() if "to stderr" in log.read_text() else None, what="log")
            assert "to stdout" in text and f"started pid {view.pid} on port {view.port}" in text

    run(scenario())


def test_replicas_become_ready_and_scale(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with supervisor(tmp_path / "state") as (sup, events):
            await sup.converge("web", "r1", demo("v1"), 3)
            ready = await until(lambda: all_ready(sup, 3), what="3 ready replicas")
            assert [v.index for v in ready] == [0, 1, 2]
            assert len({v.pid for v in ready}) == 3 and len({v.port for v in ready}) == 3
            for v in ready:
                assert get(v.port or 0) == (200, "v1")
                assert v.restarts == 0 and not v.crash_looping and v.ready_since is not None
            # Every transition reached the change hook, in order.
            assert all(events.phases(i) == ["starting", "ready"] for i in range(3))

            await sup.converge("web", "r1", demo("v1"), 5)
            grown = await until(lambda: all_ready(sup, 5), what="5 ready replicas")
            assert [v.pid for v in grown[:3]] == [v.pid for v in ready]  # untouched

            await sup.converge("web", "r1", demo("v1"), 2)
            # Surplus replicas stop counting at once: they are draining before converge returns.
            assert [v.phase for v in views(sup)] == ["ready", "ready", "draining", "draining", "draining"]
            shrunk = await until(lambda: all_ready(sup, 2), what="scale down to 2")
            assert [v.pid for v in shrunk] == [v.pid for v in ready[:2]]  # newest indices went first
            for v in grown[2:]:
                assert events.phases(v.index)[-2:] == ["draining", "stopped"]
                assert not procfs.is_running(v.pid or 0, procfs.start_time(v.pid or 0) or -1)
            # A new replica takes the lowest free index.
            await sup.converge("web", "r1", demo("v1"), 3)
            assert [v.index for v in await until(lambda: all_ready(sup, 3))] == [0, 1, 2]

            await sup.stop_revision("web", "r1")
            assert sup.snapshot() == {}

    run(scenario())


def test_readiness_follows_the_probe(tmp_path: Path) -> None:
    sick = tmp_path / "sick"
    tpl = python(
        SERVE,
        env={"UNHEALTHY": str(sick)},
        readinessProbe={"path": "/healthz", "periodSeconds": 1, "failureThreshold": 2, "successThreshold": 1},
    )

    async def scenario() -> None:
        async with supervisor(tmp_path / "state") as (sup, events):
            await sup.converge("web", "r1", tpl, 1)
            (first,) = await until(lambda: all_ready(sup, 1))
            sick.touch()
            await until(lambda: views(sup)[0].phase == "unready", what="unready")
            assert views(sup)[0].ready_since is None and views(sup)[0].pid == first.pid
            sick.unlink()
            (again,) = await until(lambda: all_ready(sup, 1), what="ready again")
            assert first.ready_since is not None and again.ready_since is not None
            assert again.ready_since > first.ready_since and again.restarts == 0
            assert events.phases() == ["starting", "ready", "unready", "ready"]

    run(scenario())
