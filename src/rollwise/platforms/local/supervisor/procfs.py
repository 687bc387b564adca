"""Process identity from /proc (Linux): a pid alone is not an identity, since pids are reused;
the pair (pid, start time) is."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProcStat:
    state: str  # R, S, D, Z (zombie), X (dead), ...
    start_time: int  # field 22: clock ticks after boot
    pgrp: int


def read_stat(pid: int) -> ProcStat | None:
    """None when no process has this pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    return parse_stat(raw)


def parse_stat(raw: str) -> ProcStat:
    # Field 2 (comm) is in parentheses and may itself hold spaces and parentheses, so split
    # after the last ")": what follows starts at field 3.
    rest = raw[raw.rindex(")") + 2 :].split()
    return ProcStat(state=rest[0], start_time=int(rest[19]), pgrp=int(rest[2]))


def start_time(pid: int) -> int | None:
    stat = read_stat(pid)
    return None if stat is None else stat.start_time


def is_running(pid: int, started: int) -> bool:
    """The process that started at `started` still has `pid` and has not exited (a zombie has)."""
    stat = read_stat(pid)
    return stat is not None and stat.start_time == started and stat.state not in ("Z", "X", "x")


def pid_is_ours(pid: int, started: int) -> bool:
    """Whether the number `pid` still names our process (alive or a zombie) or nothing at all.
    A pid that is some process's group id is never handed out again, so while this holds,
    signalling the group `pid` reaches only what our process left behind."""
    stat = read_stat(pid)
    return stat is None or stat.start_time == started
