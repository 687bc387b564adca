"""Per-process log files: `<state>/logs/<rollout>/<revision>/<index>.log`.

A replica writes straight into its file (no pipe through the control plane), because it must keep
running, and keep logging, while the control plane is down. The file is opened O_APPEND, which lets
the supervisor rotate it by copy-then-truncate: the process's next write lands at the new end.
Lines written between the copy and the truncate are lost; that window is a few system calls."""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")


def log_path(state_dir: Path, rollout: str, revision: str, index: int) -> Path:
    for what, name in (("rollout", rollout), ("revision", revision)):
        # Names become directory names; refuse anything that could climb out of the state dir.
        if not _NAME.match(name) or name in (".", ".."):
            raise ValueError(f"{what} name {name!r} cannot be used in a log path")
    return state_dir / "logs" / rollout / revision / f"{index}.log"


def rotated_path(path: Path) -> Path:
    return path.with_name(path.name + ".1")


def open_for_process(path: Path) -> int:
    """A descriptor for the child's stdout and stderr. The caller closes its copy after spawning."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)


def note(path: Path, message: str) -> None:
    """A line from the supervisor itself (start, exit, restart), so `rollwise logs` tells the story."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    try:
        fd = open_for_process(path)
        try:
            os.write(fd, f"[rollwise {stamp}] {message}\n".encode())
        finally:
            os.close(fd)
    except OSError:
        pass  # a full or read-only disk must not stop supervision


def shorten(text: str, limit: int = 300) -> str:
    """One readable line, however long the command (an inline script) is."""
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def rotate_if_large(path: Path, max_bytes: int) -> bool:
    """Keep one old file: `<index>.log.1` is replaced by the current content, which is then emptied."""
    try:
        if path.stat().st_size <= max_bytes:
            return False
        shutil.copyfile(path, rotated_path(path))
        os.truncate(path, 0)
    except FileNotFoundError:
        return False
    return True
