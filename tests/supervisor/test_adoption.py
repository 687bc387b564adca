"""Processes outlive the control plane: a supervisor started on the same records adopts live
replicas without restarting them, restarts the ones that died meanwhile, never signals a process
that merely reused a recorded pid, and finishes stops left half done."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from rollwise.platforms.local.store import Store
from rollwise.platforms.local.supervisor import JsonFileRecords, MemoryRecords, ReplicaRecord, ReplicaView, procfs
from rollwise.platforms.local.supervisor.store_records import StoreReplicaRecords
from rollwise.spec.workload import ProcessTemplate
from tests.supervisor.helpers import all_ready, demo, first_where, run, supervisor, until, views

HERE = Path(__file__).parent


def test_adopts_after_the_control_plane_is_killed(tmp_path: Path) -> None:
    state, records_file, ready_file = tmp_path / "state", tmp_path / "replicas.json", tmp_path / "ready.json"
    plane = subprocess.Popen(
        [sys.executable, str(HERE / "control_plane.py"), str(state), str(records_file), "3", str(ready_file)]
    )
    try:

        async def wait_ready() -> list[dict[str, object]]:
            text = await until(lambda: ready_file.read_text() if ready_file.exists() else None, what="first plane")
            loaded: list[dict[str, object]] = json.loads(text)
            return loaded

        before = run(wait_ready())
    finally:
        plane.kill()  # SIGKILL: no chance to clean up
        plane.wait(timeout=30)
    pids = [int(str(v["pid"])) for v in before]
    started = [procfs.start_time(pid) for pid in pids]
    assert all(s is not None and procfs.is_running(pid, s) for pid, s in zip(pids, started, strict=True))
    os.kill(pids[1], signal.SIGKILL)  # dies while no control plane watches
    run(until(lambda: not procfs.is_running(pids[1], started[1] or 0), what="replica 1 to die"))

    async def scenario() -> None:
        async with supervisor(state, JsonFileRecords(records_file)) as (sup, _):
            # Right after start the survivors are known ready (one probe, record's ready_since kept).
            now = views(sup)
            assert [(v.index, v.pid, v.phase, v.restarts) for v in now if v.index != 1] == [
                (0, pids[0], "ready", 0),
                (2, pids[2], "ready", 0),
            ]
            assert str(now[0].ready_since) == before[0]["ready_since"]
            assert now[1].phase == "crashed" and now[1].last_exit == "found not running when the control plane started"
            after = await until(lambda: all_ready(sup, 3), what="replica 1 restarted")
            assert [v.pid for v in after][::2] == [pids[0], pids[2]] and after[1].pid != pids[1]
            assert [v.restarts for v in after] == [0, 1, 0]
            # Adopted processes are not our children: their crash is seen through /proc.
            os.kill(pids[2], signal.SIGKILL)
            await until(lambda: views(sup)[2].pid not in (None, pids[2]) and views(sup)[2].restarts == 1)
            await until(lambda: all_ready(sup, 3))
            # And they are stopped like any other.
            await sup.converge("web", "r1", demo("v1"), 1)
            await until(lambda: len(views(sup)) == 1)
            assert views(sup)[0].pid == pids[0]
        assert not procfs.is_running(pids[0], started[0] or 0)
        assert JsonFileRecords(records_file).list() == []

    run(scenario())


def test_reused_pid_is_neither_adopted_nor_signalled(tmp_path: Path) -> None:
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    try:
        started = procfs.start_time(stranger.pid)
        assert started is not None
        records = MemoryRecords()
        tpl = demo("v1").model_dump(by_alias=True, mode="json")
        # The record names the stranger's pid with another start time: the number was reused.
        records.save(ReplicaRecord("web", "r1", 0, tpl, pid=stranger.pid, start_time=started - 1, port=1))

        async def scenario() -> None:
            async with supervisor(tmp_path / "state", records) as (sup, _):
                assert views(sup)[0].phase == "crashed"
                (view,) = await until(lambda: all_ready(sup, 1))
                assert view.pid != stranger.pid and view.restarts == 1

        run(scenario())
        assert stranger.poll() is None and procfs.is_running(stranger.pid, started)
    finally:
        stranger.kill()
        stranger.wait(timeout=30)


def test_a_stop_left_half_done_is_finished(tmp_path: Path) -> None:
    records = MemoryRecords()
    entered = asyncio.Event()

    async def stuck(view: ReplicaView) -> None:
        entered.set()
        await asyncio.Event().wait()

    async def first() -> int:
        async with supervisor(tmp_path / "state", records, drain=stuck) as (sup, _):
            await sup.converge("web", "r1", demo("v1"), 1)
            (view,) = await until(lambda: all_ready(sup, 1))
            await sup.converge("web", "r1", demo("v1"), 0)
            await asyncio.wait_for(entered.wait(), 30)
            await sup.shutdown(stop_processes=False)  # the control plane goes away mid-drain
            assert view.pid is not None
            return view.pid

    pid = run(first())
    started = procfs.start_time(pid)
    assert started is not None and procfs.is_running(pid, started) and records.list()[0].stopping

    async def second() -> None:
        async with supervisor(tmp_path / "state", records) as (sup, events):
            await until(lambda: not sup.snapshot(), what="the stop to finish")
            assert events.phases() == ["draining", "stopped"]
        assert not procfs.is_running(pid, started) and records.list() == []

    run(second())


def test_records_in_the_sqlite_store(tmp_path: Path) -> None:
    """The store's replica table carries everything adoption needs, crashed replicas included."""
    with Store.open(tmp_path / "state") as store:
        records = StoreReplicaRecords(store.replicas)

        async def first() -> ReplicaView:
            async with supervisor(tmp_path / "state", records) as (sup, _):
                await sup.converge("web", "r1", demo("v1"), 1, extra_env={"FLAGS": "/f.json"})
                (view,) = await until(lambda: all_ready(sup, 1))
                await sup.shutdown(stop_processes=False)
                return view

        view = run(first())
        (row,) = store.replicas.list()
        assert (row.pid, row.port, row.restarts) == (view.pid, view.port, 0) and row.started_ticks > 0
        (record,) = records.list()
        assert record.extra_env == {"FLAGS": "/f.json"} and record.ready_since is not None
        assert ProcessTemplate.model_validate(record.template) == demo("v1")

        async def second() -> None:
            async with supervisor(tmp_path / "state", records) as (sup, _):
                assert [(v.pid, v.phase) for v in views(sup)] == [(view.pid, "ready")]
                os.kill(view.pid or 0, signal.SIGKILL)
                crashed = await until(lambda: first_where(sup, lambda v: v.phase == "crashed"))
                assert crashed.pid is None and records.list()[0].pid is None  # stored as 0
                await until(lambda: all_ready(sup, 1))
            assert records.list() == []

        run(second())
