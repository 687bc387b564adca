"""The reconcile gate: changes go first, and periodic resyncs hold no more than their share of the
places, so that a wave of them (every Rollout read at a controller's start comes back together)
cannot take every place from a spec change."""

from __future__ import annotations

import asyncio

import pytest

from rollwise.platforms.kubernetes.gate import BACKGROUND, URGENT, Gate

pytestmark = pytest.mark.asyncio


class Holder:
    """One reconcile: takes its place at the gate, then runs until told to finish."""

    def __init__(self, gate: Gate, priority: int) -> None:
        self.ticket = gate.ticket(priority)
        self.running = asyncio.Event()
        self.finish = asyncio.Event()
        self.task = asyncio.create_task(self._run(gate))

    async def _run(self, gate: Gate) -> None:
        async with gate.hold(self.ticket):
            self.running.set()
            await self.finish.wait()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_resyncs_hold_only_their_share_and_changes_pass_them() -> None:
    gate = Gate(4, background=2)
    resyncs = [Holder(gate, BACKGROUND) for _ in range(5)]
    await settle()
    assert [r.running.is_set() for r in resyncs] == [True, True, False, False, False]

    # Two places are still free for changes, however many resyncs wait.
    changes = [Holder(gate, URGENT) for _ in range(2)]
    await settle()
    assert all(c.running.is_set() for c in changes)
    third = Holder(gate, URGENT)
    await settle()
    assert not third.running.is_set()

    # A place set free goes to the waiting change before any waiting resync.
    resyncs[0].finish.set()
    await settle()
    assert third.running.is_set()
    assert [r.running.is_set() for r in resyncs[2:]] == [False, False, False]

    # A change's place set free goes to a resync while their share allows (one runs)...
    changes[0].finish.set()
    await settle()
    assert [r.running.is_set() for r in resyncs[2:]] == [True, False, False]
    # ...and stays free once it is taken (two run), however many resyncs wait.
    changes[1].finish.set()
    await settle()
    assert [r.running.is_set() for r in resyncs[3:]] == [False, False]
    assert gate.free == 1
    # A resync's place goes to the next resync; an event for a waiting resync makes it a change,
    # which takes the free place at once.
    resyncs[1].finish.set()
    await settle()
    assert resyncs[3].running.is_set() and not resyncs[4].running.is_set()
    resyncs[4].ticket.hurry()
    await settle()
    assert resyncs[4].running.is_set()

    for h in [*resyncs, *changes, third]:
        h.finish.set()
    await asyncio.gather(*(h.task for h in [*resyncs, *changes, third]))
    assert gate.free == 4 and gate.background_held == 0 and gate.waiting == 0
