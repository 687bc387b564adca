"""One replica's operating-system process: launched in its own session, so it outlives the control
plane and owns a process group that stopping can kill whole; or adopted from a record left by an
earlier control plane, in which case it is not our child and is watched through /proc."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from rollwise.platforms.local.supervisor import procfs


class ProcessHandle:
    def __init__(self, pid: int, start_time: int | None, popen: subprocess.Popen[bytes] | None = None) -> None:
        self.pid = pid
        self.start_time = start_time
        self._popen = popen

    @classmethod
    def spawn(cls, argv: Sequence[str], env: Mapping[str, str], cwd: str | None, log_fd: int) -> ProcessHandle:
        popen = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            close_fds=True,
            start_new_session=True,
        )
        # The child is not reaped until we say so, so its /proc entry exists even if it already exited.
        return cls(popen.pid, procfs.start_time(popen.pid), popen)

    @property
    def is_child(self) -> bool:
        return self._popen is not None

    def exited(self) -> bool:
        """Without reaping a child: while it is a zombie its pid (and so its group id) cannot be
        reused, which keeps `signal_group` safe until `reap`."""
        if self._popen is not None:
            if self._popen.returncode is not None:
                return True
            try:
                info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return True  # reaped by someone else
            return info is not None
        if self.start_time is None:
            return procfs.read_stat(self.pid) is None
        return not procfs.is_running(self.pid, self.start_time)

    def signal_group(self, sig: signal.Signals) -> None:
        """Signal the whole process group (the process and whatever it spawned), unless the pid now
        belongs to an unrelated process."""
        if self.start_time is not None and not procfs.pid_is_ours(self.pid, self.start_time):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def finish(self) -> str:
        """After `exited`: kill what the process left in its group, reap it, and say how it ended."""
        self.signal_group(signal.SIGKILL)
        if self._popen is None:
            return "exited (not a child of this control plane: status unknown)"
        code = self._popen.wait()
        return describe_status(code)


def describe_status(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def working_dir(value: str | None) -> str | None:
    """The template's workingDir, `~` expanded; relative paths are relative to the control plane's."""
    return None if value is None else str(Path(value).expanduser())
