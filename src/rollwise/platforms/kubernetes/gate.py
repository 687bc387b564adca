"""How many reconciles run at once, and which goes next. A semaphore with two priorities: a
reconcile for something that happened (an event, a first look, a timed step, a retry) goes before
a periodic resync, and a resync waiting its turn is moved up when an event arrives for its Rollout.
Without that, thousands of resyncs queued in arrival order hold a spec change back for as long as
it takes to work through them."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator

URGENT, BACKGROUND = 0, 1


class Ticket:
    """One reconcile's place in line."""

    def __init__(self, gate: Gate, priority: int) -> None:
        self.gate = gate
        self.priority = priority
        self.future: asyncio.Future[None] | None = None  # set while waiting

    def hurry(self) -> None:
        """Wait with the urgent ones from now on (nothing if not waiting, or urgent already)."""
        if self.future is not None and not self.future.done() and self.priority != URGENT:
            self.priority = URGENT
            # The old entry stays in the heap; whichever is popped first finds the future done.
            self.gate.push(self)


class Gate:
    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a gate needs at least one place, not {size}")
        self.free = size
        self._heap: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def ticket(self, priority: int = URGENT) -> Ticket:
        return Ticket(self, priority)

    def push(self, ticket: Ticket) -> None:
        assert ticket.future is not None
        heapq.heappush(self._heap, (ticket.priority, next(self._order), ticket.future))

    @property
    def waiting(self) -> int:
        return sum(1 for _, _, f in self._heap if not f.done())

    @contextlib.asynccontextmanager
    async def hold(self, ticket: Ticket) -> AsyncIterator[None]:
        if self.free > 0:  # then nobody waits: a release hands its place to a waiter directly
            self.free -= 1
        else:
            ticket.future = asyncio.get_running_loop().create_future()
            self.push(ticket)
            try:
                await ticket.future
            except asyncio.CancelledError:
                if ticket.future.done() and not ticket.future.cancelled():
                    self._release()  # granted, then cancelled before it could run: pass it on
                else:
                    ticket.future.cancel()  # its heap entries are skipped
                raise
            finally:
                ticket.future = None
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._heap:
            _, _, future = heapq.heappop(self._heap)
            if not future.done():
                future.set_result(None)
                return
        self.free += 1
