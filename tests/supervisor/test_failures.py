"""Crashes and stops with real processes: backoff and crash-looping, the drain hook before SIGTERM,
SIGKILL after the grace period for a process ignoring SIGTERM, and no orphans."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from rollwise.platforms.local.supervisor import BackoffPolicy, ReplicaView, Tuning, procfs
from tests.supervisor.helpers import SERVE, all_ready, first_where, python, run, supervisor, until, views

# Crashes (exit 3) on its first CRASHES starts, counted in the file COUNTER, then serves.
CRASH_THEN_SERVE = (
    """
import os, sys
path = os.environ['COUNTER']
n = int(open(path).read()) if os.path.exists(path) else 0
open(path, 'w').write(str(n + 1))
print('attempt', n + 1, flush=True)
if n < int(os.environ['CRASHES']):
    sys.exit(3)
"""
    + SERVE
)

# Ignores SIGTERM (its child inherits that), starts a child, and reports the child's pid.
IGNORE_TERM = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])
open(os.environ['CHILD_PID'] + '.tmp', 'w').write(str(child.pid))
os.rename(os.environ['CHILD_PID'] + '.tmp', os.environ['CHILD_PID'])
time.sleep(600)
"""

# Records its SIGTERM in TERMED<replica> and exits.
MARK_TERM = (
    """
import os, signal
def term(*_):
    open(os.environ['TERMED'] + os.environ['ROLLWISE_REPLICA'], 'w').write(str(os.getpid()))
    os._exit(0)
signal.signal(signal.SIGTERM, term)
"""
    + SERVE
)


def test_crash_loop_backoff_and_reset(tmp_path: Path) -> None:
    policy = BackoffPolicy(initial=0.2, cap=10, reset_after=1.5)
    tpl = python(CRASH_THEN_SERVE, env={"COUNTER": str(tmp_path / "count"), "CRASHES": "4"})

    async def scenario() -> None:
        async with supervisor(tmp_path / "state", tuning=Tuning(backoff=policy, poll_interval=0.05)) as (sup, ev):
            await sup.converge("web", "r1", tpl, 1)
            looping = await until(lambda: first_where(sup, lambda v: v.crash_looping), what="crash-looping")
            assert looping.restarts == 3 and looping.last_exit == "exited with code 3"
            (ready,) = await until(lambda: all_ready(sup, 1), what="ready after four crashes")
            assert ready.restarts == 4 and ready.crash_looping  # still within the streak
            # Up for reset_after: the streak is forgiven and the flag clears, without a restart.
            healthy = await until(lambda: first_where(sup, lambda v: not v.crash_looping), what="reset")
            assert healthy.pid == ready.pid and healthy.restarts == 4

            starts = [t for t, v in ev.of() if v.phase == "starting" and v.pid is not None]
            starts = [t for i, t in enumerate(starts) if i == 0 or t != starts[i - 1]]
            crashes = [t for t, v in ev.of() if v.phase == "crashed"]
            gaps = [s - c for c, s in zip(crashes, starts[1:], strict=True)]
            for gap, delay in zip(gaps, [0.2, 0.4, 0.8, 1.6], strict=True):
                assert delay - 0.01 <= gap <= delay + 1.0, (gaps, delay)
            log = sup.log_path("web", "r1", 0).read_text()
            assert log.count("exited with code 3; restarting in") == 4 and "restarting in 1.6s" in log
            assert log.count("\nattempt") == 5 and log.count("started pid") == 5  # one file, appended

    run(scenario())


def test_unstartable_command_is_retried_as_a_crash(tmp_path: Path) -> None:
    tpl = python("", workingDir=str(tmp_path / "missing"))

    async def scenario() -> None:
        tuning = Tuning(backoff=BackoffPolicy(initial=0.05, cap=0.1), poll_interval=0.02)
        async with supervisor(tmp_path / "state", tuning=tuning) as (sup, _):
            await sup.converge("web", "r1", tpl, 1)
            view = await until(lambda: first_where(sup, lambda v: v.crash_looping), what="crash-looping")
            assert view.phase in ("crashed", "starting") and "could not start" in (view.last_exit or "")

    run(scenario())


def test_sigterm_ignored_means_sigkill_for_the_whole_group(tmp_path: Path) -> None:
    child_file = tmp_path / "child.pid"
    tpl = python(IGNORE_TERM, env={"CHILD_PID": str(child_file)}, terminationGracePeriodSeconds=1)

    async def scenario() -> None:
        async with supervisor(tmp_path / "state") as (sup, events):
            await sup.converge("web", "r1", tpl, 1)
            child = int(await until(lambda: child_file.read_text() if child_file.exists() else None, what="child pid"))
            (view,) = views(sup)
            parent_started, child_started = procfs.start_time(view.pid or 0), procfs.start_time(child)
            assert parent_started is not None and child_started is not None
            began = time.monotonic()
            await sup.stop_revision("web", "r1")
            took = time.monotonic() - began
            assert 1.0 <= took < 6, took
            assert not procfs.is_running(view.pid or 0, parent_started)
            # The child got SIGKILL with its group; a reaper may take a moment to collect it.
            await until(lambda: not procfs.is_running(child, child_started), what="child gone")
            assert events.phases() == ["starting", "draining", "stopped"]
            assert "killed by SIGKILL after the 1s grace period" in sup.log_path("web", "r1", 0).read_text()

    run(scenario())


def test_drain_hook_runs_before_sigterm(tmp_path: Path) -> None:
    termed = tmp_path / "termed-"
    tpl = python(MARK_TERM, env={"TERMED": str(termed)}, terminationGracePeriodSeconds=1)
    drained: list[ReplicaView] = []
    entered = asyncio.Event()
    release = asyncio.Event()

    async def drain(view: ReplicaView) -> None:
        drained.append(view)
        entered.set()
        if view.index == 1:
            await release.wait()
        else:
            await asyncio.Event().wait()  # never finishes: bounded by the grace period

    async def scenario() -> None:
        async with supervisor(tmp_path / "state", drain=drain) as (sup, _):
            await sup.converge("web", "r1", tpl, 2)
            first = await until(lambda: all_ready(sup, 2))
            await sup.converge("web", "r1", tpl, 1)
            await asyncio.wait_for(entered.wait(), 30)
            # Inside the hook: draining, not ready, still running, not yet signalled.
            assert drained[0].index == 1 and drained[0].phase == "draining" and not drained[0].ready
            assert [v.phase for v in views(sup)] == ["ready", "draining"]
            assert not Path(f"{termed}1").exists() and procfs.read_stat(first[1].pid or 0) is not None
            release.set()
            await until(lambda: len(views(sup)) == 1, what="replica 1 stopped")
            assert Path(f"{termed}1").read_text() == str(first[1].pid)

            began = time.monotonic()
            await sup.stop_revision("web", "r1")  # replica 0's hook never returns
            assert 1.0 <= time.monotonic() - began < 6
            assert Path(f"{termed}0").read_text() == str(first[0].pid)  # SIGTERM, not SIGKILL
            assert os.path.exists(f"{termed}0") and [v.index for v in drained] == [1, 0]

    run(scenario())
