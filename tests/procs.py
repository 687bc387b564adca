"""Helpers for tests that run real processes on 127.0.0.1: free ports and condition waits."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], T | None], timeout: float = 30.0, what: str = "condition") -> T:
    """Poll until `condition` returns something truthy; generous deadlines, since this machine is
    small and shared."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the thing we wait for may not exist yet
            last_error = exc
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}" + (f": {last_error}" if last_error else ""))
