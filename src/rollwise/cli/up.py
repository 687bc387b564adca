"""`rollwise up` starts the local control plane of a state directory (detached by default, or in
the foreground); `rollwise down` stops it together with every proxy and replica."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from rollwise.cli.errors import CliError
from rollwise.cli.local_client import Client, daemon_info
from rollwise.cli.options import DEFAULT_DIR, StateDir
from rollwise.platforms.local.daemon import layout

START_TIMEOUT = 60.0
STOP_TIMEOUT = 120.0


def up(
    state_dir: StateDir = Path(DEFAULT_DIR),
    foreground: Annotated[
        bool, typer.Option("--foreground/--detach", help="Run in this terminal, or in the background.")
    ] = False,
    port: Annotated[int, typer.Option("--port", help="API port on 127.0.0.1 (0: a free one).", min=0, max=65535)] = 0,
) -> None:
    """Start the local control plane: state in DIR, API on 127.0.0.1."""
    if foreground:
        from rollwise.platforms.local.daemon.server import DaemonError, run

        try:
            run(state_dir, port)
        except DaemonError as exc:
            raise CliError(str(exc)) from None
        return
    info = daemon_info(state_dir)
    if info is not None:
        typer.echo(f"a control plane is already running in {state_dir}: {info['api']} (pid {info['pid']})")
        return
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    log_path = layout.daemon_log(state_dir)
    argv = [sys.executable, "-m", "rollwise.cli", "up", "--foreground", "--dir", str(state_dir), "--port", str(port)]
    with open(log_path, "ab") as log:
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        info = daemon_info(state_dir)
        if info is not None and info.get("pid") == child.pid:
            typer.echo(f"control plane running in {state_dir}: {info['api']} (pid {child.pid}, log {log_path})")
            return
        if child.poll() is not None:
            raise CliError(f"the control plane did not start: {_last_line(log_path)}")
        time.sleep(0.1)
    raise CliError(f"the control plane did not start within {START_TIMEOUT:g}s; see {log_path}")


def down(
    state_dir: StateDir = Path(DEFAULT_DIR),
    keep: Annotated[
        bool, typer.Option("--keep-processes", help="Stop the control plane only; traffic keeps flowing.")
    ] = False,
) -> None:
    """Stop the local control plane and, unless --keep-processes, every proxy and replica."""
    client = Client(state_dir, timeout=STOP_TIMEOUT)
    client.call("POST", "/v1/shutdown", {"stopProcesses": not keep})
    deadline = time.monotonic() + STOP_TIMEOUT
    # The control plane removes daemon.json as it exits (its parent may be slow to reap it).
    while time.monotonic() < deadline and _running(state_dir, client.pid):
        time.sleep(0.1)
    what = "control plane stopped" + (
        "; proxies and replicas keep running" if keep else ", with its proxies and replicas"
    )
    typer.echo(what)


def _running(state_dir: Path, pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    info = daemon_info(state_dir)
    return info is not None and info.get("pid") == pid


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no output"
    return lines[-1] if lines else "no output"
