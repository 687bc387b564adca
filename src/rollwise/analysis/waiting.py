"""Waiting for an event with a timeout, safely cancellable.

Python 3.11's `asyncio.wait_for` loses a cancellation that arrives just as the awaited event is
set (gh-86296): the task then runs on, and a shutdown waiting for it hangs. `asyncio.wait` does
not have that race."""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until `event` is set or `timeout` seconds pass; True if it was set."""
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout)
    finally:
        waiter.cancel()
    return event.is_set()
