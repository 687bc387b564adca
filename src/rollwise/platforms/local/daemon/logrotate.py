"""The control plane's own log (`daemon.log`, where a detached `rollwise up` sends its output) and
its proxies' logs (`proxies/<rollout>/<listener>.log`), rotated as the replicas' logs are: above
the size limit the file is copied to `<name>.1` (replacing the previous one) and truncated. Every
writer opened these files O_APPEND, so its next line lands at the new end; lines written between
the copy and the truncate (a few system calls) are lost. While no control plane runs, nothing
rotates them (the proxies log little: starts, stops and failures)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from rollwise.platforms.local.daemon import layout
from rollwise.platforms.local.supervisor.logs import rotate_if_large

log = logging.getLogger("rollwise.daemon.logrotate")

MAX_BYTES = 10 * 1024 * 1024
INTERVAL_SECONDS = 2.0


def control_plane_logs(state_dir: Path) -> list[Path]:
    proxies = layout.proxies_dir(state_dir)
    return [layout.daemon_log(state_dir), *(sorted(proxies.glob("*/*.log")) if proxies.is_dir() else [])]


def rotate_all(state_dir: Path, max_bytes: int = MAX_BYTES) -> list[Path]:
    """Rotate every control-plane log above `max_bytes`; the ones rotated."""
    return [path for path in control_plane_logs(state_dir) if rotate_if_large(path, max_bytes)]


async def rotate_forever(state_dir: Path, max_bytes: int = MAX_BYTES, interval: float = INTERVAL_SECONDS) -> None:
    while True:
        try:
            rotated = await asyncio.to_thread(rotate_all, state_dir, max_bytes)
        except OSError as exc:
            log.warning("rotating the control plane's logs: %s", exc)
        else:
            for path in rotated:
                log.info("rotated %s into %s.1", path, path.name)
        await asyncio.sleep(interval)
