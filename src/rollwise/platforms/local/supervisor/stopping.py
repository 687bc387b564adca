"""Ending a process: SIGTERM to its group, SIGKILL after the grace period. The group signal reaches
whatever the process spawned, so a stop leaves no orphans behind (short of a descendant that left
the group on purpose with setsid)."""

from __future__ import annotations

import asyncio
import signal
import time

from rollwise.platforms.local.supervisor.process import ProcessHandle


async def wait_exit(handle: ProcessHandle, timeout: float, poll: float) -> bool:
    deadline = time.monotonic() + timeout
    while not handle.exited():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(poll)
    return True


async def terminate(handle: ProcessHandle, grace: float, *, poll: float = 0.05, kill_wait: float = 10.0) -> str:
    """How the process ended, for its log."""
    handle.signal_group(signal.SIGTERM)
    graceful = await wait_exit(handle, grace, poll)
    if not graceful:
        handle.signal_group(signal.SIGKILL)
        if not await wait_exit(handle, kill_wait, poll):
            # Stuck in the kernel (uninterruptible sleep): reaping now would block the control plane.
            return f"still present {kill_wait:g}s after SIGKILL"
    # Also kills what the process left in its group, when it exited on SIGTERM alone.
    status = handle.finish()
    return status if graceful else f"{status} after the {grace:g}s grace period"
