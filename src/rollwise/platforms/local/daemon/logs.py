"""`GET /v1/rollouts/{name}/logs`: the last lines of replicas' log files (the supervisor writes
them under `<state>/logs/<rollout>/<revision>/<index>.log`)."""

from __future__ import annotations

import os
from pathlib import Path

BLOCK = 64 * 1024


def tail(path: Path, lines: int) -> list[str]:
    """The last `lines` lines, read from the end so a large log costs what is shown."""
    if lines <= 0:
        return []
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            end = f.tell()
            data = b""
            while end > 0 and data.count(b"\n") <= lines:
                start = max(0, end - BLOCK)
                f.seek(start)
                data = f.read(end - start) + data
                end = start
    except OSError:
        return []
    return data.decode(errors="replace").splitlines()[-lines:]


def replica_logs(state_dir: Path, rollout: str, revision: str, replica: int | None) -> list[tuple[int, Path]]:
    """(index, path) of the log files of a revision's replicas, or of one of them."""
    folder = state_dir / "logs" / rollout / revision
    if replica is not None:
        path = folder / f"{replica}.log"
        return [(replica, path)] if path.is_file() else []
    found = []
    for path in folder.glob("*.log") if folder.is_dir() else []:
        if path.stem.isdigit():
            found.append((int(path.stem), path))
    return sorted(found)


def render(state_dir: Path, rollout: str, revision: str, replica: int | None, lines: int) -> str:
    files = replica_logs(state_dir, rollout, revision, replica)
    if replica is not None or len(files) == 1:
        return "".join(line + "\n" for _, path in files for line in tail(path, lines))
    out = []
    for index, path in files:
        out.append(f"==> {revision}/{index} <==\n")
        out += [line + "\n" for line in tail(path, lines)]
    return "".join(out)
