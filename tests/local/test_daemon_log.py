"""The log of a detached control plane (`<dir>/daemon.log`) is rotated above 10 MiB, like the
replicas' logs: copied to daemon.log.1, then emptied, and the control plane goes on logging into
daemon.log from its new start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.procs import wait_for

ROLLWISE = [sys.executable, "-m", "rollwise.cli"]


def test_daemon_log_is_rotated_above_its_limit(tmp_path: Path) -> None:
    state = tmp_path / "state"
    up = subprocess.run([*ROLLWISE, "up", "--dir", str(state)], capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, (up.stdout, up.stderr)
    try:
        log = state / "daemon.log"
        wait_for(lambda: b"serving on" in log.read_bytes(), timeout=60, what="the control plane's first lines")
        with log.open("ab") as f:
            f.write((b"x" * 1023 + b"\n") * (11 * 1024))  # 11 MiB, past the 10 MiB limit

        def rotated() -> bool:
            old = log.with_name("daemon.log.1")
            return old.exists() and old.stat().st_size > 10 * 1024 * 1024 and b"rotated" in log.read_bytes()

        wait_for(rotated, timeout=60, what="daemon.log rotated")
        # The control plane writes at the new end of the file: no gap of the old size before it.
        assert log.stat().st_size < 64 * 1024
        assert b"serving on" in log.with_name("daemon.log.1").read_bytes()
    finally:
        down = subprocess.run([*ROLLWISE, "down", "--dir", str(state)], capture_output=True, text=True, timeout=180)
        assert down.returncode == 0, (down.stdout, down.stderr)
