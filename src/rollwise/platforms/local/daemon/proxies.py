"""The proxy processes: one per listener of each rollout (`main`, and `preview` for blue-green
and A/B). They run in their own sessions and outlive the control plane, which finds them again
from their ready files (`proxies/<rollout>/<listener>.ready.json`) and drives them over their
admin ports, authenticated with the control plane's own token."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollwise.platforms.local.daemon import layout
from rollwise.platforms.local.proxy.client import AdminError, ProxyAdmin, Ready, command, read_ready
from rollwise.platforms.local.proxy.routes import RouteTable, RouteTableError
from rollwise.platforms.local.store import token_path

log = logging.getLogger("rollwise.daemon.proxies")


class ProxyError(RuntimeError):
    """A proxy could not be started or driven; the message says why in one line."""


@dataclass
class ProxyProcess:
    rollout: str
    listener: str
    pid: int
    port: int
    admin: ProxyAdmin
    # Our child, to reap; None for a proxy adopted from an earlier control plane.
    popen: subprocess.Popen[bytes] | None = None
    # The table known to be in force, so that an unchanged table is not pushed again.
    pushed: RouteTable | None = None

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return False  # the pid went to another user's process
        return _is_proxy(self.pid)


class Proxies:
    def __init__(self, state_dir: Path, token: str, *, ready_timeout: float = 20.0, grace: float = 5.0) -> None:
        self.state_dir = state_dir
        self.token = token
        self.ready_timeout = ready_timeout
        self.grace = grace
        self._procs: dict[tuple[str, str], ProxyProcess] = {}

    # --- finding them ------------------------------------------------------------------------

    def adopt_all(self) -> list[ProxyProcess]:
        """Take over the proxies an earlier control plane left running; forget dead ones."""
        root = layout.proxies_dir(self.state_dir)
        adopted: list[ProxyProcess] = []
        for ready_file in sorted(root.glob("*/*.ready.json")) if root.is_dir() else []:
            rollout, listener = ready_file.parent.name, ready_file.name.removesuffix(".ready.json")
            ready = read_ready(ready_file)
            if ready is None or not _is_proxy(ready.pid):
                continue
            admin = ProxyAdmin(ready.admin_port, token=self.token)
            try:
                _, table = admin.routes()
            except (AdminError, ValueError) as exc:
                log.warning(
                    "proxy pid %d of %s/%s does not answer its admin port: %s", ready.pid, rollout, listener, exc
                )
                continue
            proc = ProxyProcess(rollout, listener, ready.pid, ready.port, admin, pushed=table)
            self._procs[(rollout, listener)] = proc
            adopted.append(proc)
        return adopted

    def of(self, rollout: str) -> list[ProxyProcess]:
        return [p for (r, _), p in sorted(self._procs.items()) if r == rollout]

    def rollouts(self) -> set[str]:
        return {r for r, _ in self._procs}

    # --- starting and stopping ----------------------------------------------------------------

    async def ensure(self, rollout: str, listener: str, port: int | None) -> tuple[ProxyProcess, bool]:
        """The running proxy of this listener, started if there is none (or it listens elsewhere
        than `port`); True when it was started now, so its table must be pushed."""
        key = (rollout, listener)
        proc = self._procs.get(key)
        if proc is not None and proc.alive() and (port is None or proc.port == port):
            return proc, False
        previous = (
            proc.port
            if proc is not None
            else _recorded_port(layout.proxy_ready_file(self.state_dir, rollout, listener))
        )
        if proc is not None:
            await self._stop(proc)
        chosen = port if port is not None else (previous or 0)
        proc = await self._start(rollout, listener, chosen)
        self._procs[key] = proc
        return proc, True

    async def _start(self, rollout: str, listener: str, port: int) -> ProxyProcess:
        ready_file = layout.proxy_ready_file(self.state_dir, rollout, listener)
        log_file = layout.proxy_log_file(self.state_dir, rollout, listener)
        ready_file.parent.mkdir(parents=True, exist_ok=True)
        ready_file.unlink(missing_ok=True)
        argv = command(
            ("127.0.0.1", port),
            ("127.0.0.1", 0),
            ready_file,
            admin_token_file=token_path(self.state_dir),
            extra=["--grace", str(self.grace)],
        )
        with open(log_file, "ab") as out:
            # Its own session: a Ctrl-C meant for a foreground control plane must not reach it.
            popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            ready = await self._wait_ready(popen, ready_file, log_file, f"{rollout} ({listener}, port {port or 'any'})")
        except BaseException:
            # Not ready (or the control plane is stopping meanwhile): a proxy nobody knows of
            # would hold its port forever.
            popen.kill()
            popen.wait()
            raise
        log.info("proxy for %s (%s) started: pid %d, port %d", rollout, listener, ready.pid, ready.port)
        return ProxyProcess(
            rollout, listener, ready.pid, ready.port, ProxyAdmin(ready.admin_port, token=self.token), popen
        )

    async def _wait_ready(self, popen: subprocess.Popen[bytes], ready_file: Path, log_file: Path, what: str) -> Ready:
        deadline = time.monotonic() + self.ready_timeout
        while True:
            ready = read_ready(ready_file)
            if ready is not None and ready.pid == popen.pid:
                return ready
            if popen.poll() is not None:
                raise ProxyError(f"the proxy for {what} exited: {_last_line(log_file)}")
            if time.monotonic() > deadline:
                raise ProxyError(f"the proxy for {what} was not ready within {self.ready_timeout:g}s")
            await asyncio.sleep(0.05)

    async def stop(self, rollout: str, listener: str | None = None) -> None:
        for key in [k for k in self._procs if k[0] == rollout and (listener is None or k[1] == listener)]:
            proc = self._procs.pop(key)
            await self._stop(proc)
            layout.proxy_ready_file(self.state_dir, *key).unlink(missing_ok=True)
        if listener is None:
            with contextlib.suppress(OSError):
                directory = layout.proxies_dir(self.state_dir) / rollout
                for leftover in directory.iterdir():
                    leftover.unlink()
                directory.rmdir()

    async def stop_all(self) -> None:
        for rollout in sorted(self.rollouts()):
            await self.stop(rollout)

    async def _stop(self, proc: ProxyProcess) -> None:
        """SIGTERM (the proxy finishes requests in flight within its grace), SIGKILL after."""
        if not proc.alive():
            if proc.popen is not None:
                proc.popen.wait()
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace + 5
        while proc.alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        if proc.popen is not None:
            await asyncio.to_thread(proc.popen.wait)

    # --- driving them -------------------------------------------------------------------------

    async def swap(self, proc: ProxyProcess, table: RouteTable) -> bool:
        """Put `table` in force unless it already is; True when it was swapped now."""
        if proc.pushed == table:
            return False
        try:
            await asyncio.to_thread(proc.admin.swap, table)
        except RouteTableError as exc:
            raise ProxyError(f"the proxy for {proc.rollout} ({proc.listener}) refused the routes: {exc}") from exc
        except AdminError as exc:
            proc.pushed = None
            raise ProxyError(str(exc)) from exc
        proc.pushed = table
        return True

    async def stats(self, proc: ProxyProcess) -> dict[str, Any]:
        try:
            return await asyncio.to_thread(proc.admin.stats)
        except (AdminError, ValueError) as exc:
            raise ProxyError(str(exc)) from exc

    async def metrics(self, proc: ProxyProcess) -> str:
        try:
            return await asyncio.to_thread(proc.admin.metrics)
        except AdminError as exc:
            raise ProxyError(str(exc)) from exc


def _recorded_port(ready_file: Path) -> int | None:
    """The port a proxy that died had: restarted, it listens where users already connect."""
    try:
        port = json.loads(ready_file.read_text())["port"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return int(port) if isinstance(port, int) else None


def _is_proxy(pid: int) -> bool:
    """A pid may be reused by an unrelated process after the proxy died: never signal that one."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"rollwise.platforms.local.proxy" in cmdline


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no output"
    return lines[-1] if lines else "no output"
