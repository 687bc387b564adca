"""How many reconciles run at once, and which goes next. A semaphore with two priorities: a
reconcile for something that happened (an event, a first look, a timed step, a retry) goes before
a periodic resync, and a resync waiting its turn is moved up when an event arrives for its Rollout.
Without that, thousands of resyncs queued in arrival order hold a spec change back for as long as
it takes to work through them.

Resyncs also hold only a share of the places (`background`): thousands of them due together (a
controller restart reads every Rollout at once, so their resyncs come back together too) would
otherwise fill every place and take the CPU and the API server's attention from the reconciles
that carry a change, even when those go first at the gate."""

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
        self.background = False  # holds one of the background places

    def hurry(self) -> None:
        """Wait with the urgent ones from now on (nothing if not waiting, or urgent already)."""
        if self.future is not None and not self.future.done() and self.priority != URGENT:
            self.priority = URGENT
            # The old entry stays in the heap; whichever is popped first finds the future done.
            self.gate.push(self)
            self.gate.grant()  # a place kept from resyncs may be free for it now


class Gate:
    def __init__(self, size: int, background: int | None = None) -> None:
        if size < 1:
            raise ValueError(f"a gate needs at least one place, not {size}")
        if background is not None and background < 1:
            raise ValueError(f"resyncs need at least one place, not {background}")
        self.free = size
        self.background_limit = min(size, background) if background is not None else size
        self.background_held = 0
        self._heap: list[tuple[int, int, Ticket, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def ticket(self, priority: int = URGENT) -> Ticket:
        return Ticket(self, priority)

    def push(self, ticket: Ticket) -> None:
        assert ticket.future is not None
        heapq.heappush(self._heap, (ticket.priority, next(self._order), ticket, ticket.future))

    @property
    def waiting(self) -> int:
        return sum(1 for _, _, _, f in self._heap if not f.done())

    def _admits(self, ticket: Ticket) -> bool:
        return ticket.priority == URGENT or self.background_held < self.background_limit

    def _take(self, ticket: Ticket) -> None:
        self.free -= 1
        if ticket.priority != URGENT:
            ticket.background = True
            self.background_held += 1

    def grant(self) -> None:
        """Hand free places to waiters, urgent ones first, resyncs within their share."""
        while self.free > 0 and self._heap:
            _, _, ticket, future = self._heap[0]
            if future.done():
                heapq.heappop(self._heap)
                continue
            if not self._admits(ticket):
                return  # the first in line is a resync (so no urgent one waits) and their share is taken
            heapq.heappop(self._heap)
            self._take(ticket)
            future.set_result(None)

    @contextlib.asynccontextmanager
    async def hold(self, ticket: Ticket) -> AsyncIterator[None]:
        # With a place free, nobody this ticket would queue behind is waiting: grant() hands a
        # place to an urgent waiter at once, and to a resync whenever their share allows.
        if self.free > 0 and self._admits(ticket):
            self._take(ticket)
        else:
            ticket.future = asyncio.get_running_loop().create_future()
            self.push(ticket)
            try:
                await ticket.future
            except asyncio.CancelledError:
                if ticket.future.done() and not ticket.future.cancelled():
                    self._release(ticket)  # granted, then cancelled before it could run: pass it on
                else:
                    ticket.future.cancel()  # its heap entries are skipped
                raise
            finally:
                ticket.future = None
        try:
            yield
        finally:
            self._release(ticket)

    def _release(self, ticket: Ticket) -> None:
        self.free += 1
        if ticket.background:
            ticket.background = False
            self.background_held -= 1
        self.grant()
