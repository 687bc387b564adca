"""Where the daemon keeps its files in the state directory (beside state.db, token and logs/)."""

from __future__ import annotations

from pathlib import Path

DAEMON_FILE = "daemon.json"
LOCK_FILE = "daemon.lock"
DAEMON_LOG = "daemon.log"


def daemon_file(state_dir: Path) -> Path:
    return state_dir / DAEMON_FILE


def lock_file(state_dir: Path) -> Path:
    return state_dir / LOCK_FILE


def daemon_log(state_dir: Path) -> Path:
    return state_dir / DAEMON_LOG


def proxies_dir(state_dir: Path) -> Path:
    return state_dir / "proxies"


def proxy_ready_file(state_dir: Path, rollout: str, listener: str) -> Path:
    return proxies_dir(state_dir) / rollout / f"{listener}.ready.json"


def proxy_log_file(state_dir: Path, rollout: str, listener: str) -> Path:
    return proxies_dir(state_dir) / rollout / f"{listener}.log"
