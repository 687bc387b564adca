"""`rollwise up --foreground`: run the control plane of a state directory until SIGTERM/SIGINT
(which leave the proxies and replicas running, for the next control plane to adopt) or until
`POST /v1/shutdown` (`rollwise down`, which stops them first)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from rollwise import __version__
from rollwise.analysis.secrets import SecretDirectory
from rollwise.platforms.local.daemon import layout, logrotate
from rollwise.platforms.local.daemon.api import Api
from rollwise.platforms.local.daemon.controller import Controller
from rollwise.platforms.local.daemon.http_server import HttpServer
from rollwise.platforms.local.daemon.proxies import Proxies
from rollwise.platforms.local.store import Store, StoreError, ensure_state_dir, ensure_token
from rollwise.platforms.local.supervisor import ReplicaView, Supervisor
from rollwise.platforms.local.supervisor.store_records import StoreReplicaRecords

log = logging.getLogger("rollwise.daemon")


class DaemonError(RuntimeError):
    """The control plane cannot start; the message is one line a person can act on."""


def run(state_dir: Path, port: int = 0) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import uvloop

    uvloop.run(serve(state_dir, port))


async def serve(state_dir: Path, port: int = 0) -> None:
    state_dir = state_dir.absolute()
    try:
        ensure_state_dir(state_dir)
        token = ensure_token(state_dir)
    except (StoreError, OSError) as exc:
        raise DaemonError(str(exc)) from exc
    lock = _lock(state_dir)
    try:
        await _serve(state_dir, token, port)
    finally:
        lock.close()


async def _serve(state_dir: Path, token: str, port: int) -> None:
    try:
        store = Store.open(state_dir)
    except StoreError as exc:
        raise DaemonError(str(exc)) from exc
    controller: Controller | None = None

    def on_change(view: ReplicaView) -> None:
        if controller is not None:
            controller.on_replica_change(view)

    async def drain(view: ReplicaView) -> None:
        if controller is not None:
            await controller.drain(view)

    supervisor = Supervisor(state_dir, StoreReplicaRecords(store.replicas), on_change, drain=drain)
    proxies = Proxies(state_dir, token)
    controller = Controller(store, supervisor, proxies, secrets=SecretDirectory.of_state_dir(state_dir))
    stop = asyncio.Event()
    stopped = False

    async def shutdown(stop_processes: bool) -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            log.info("shutting down%s", ", stopping every proxy and replica" if stop_processes else "")
            await controller.shutdown(stop_processes)
        # The answer goes out first; then the server stops.
        asyncio.get_running_loop().call_later(0.2, stop.set)

    await supervisor.start()
    adopted = await asyncio.to_thread(proxies.adopt_all)
    for proc in adopted:
        log.info("adopted the proxy of %s (%s) on port %d, pid %d", proc.rollout, proc.listener, proc.port, proc.pid)
    await controller.start()
    http = HttpServer(Api(state_dir, token, controller, shutdown).handle)
    try:
        bound = await http.start("127.0.0.1", port)
    except OSError as exc:
        await controller.shutdown(False)
        raise DaemonError(f"cannot serve the API on 127.0.0.1:{port}: {exc.strerror or exc}") from exc
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    info = layout.daemon_file(state_dir)
    _write_private(
        info,
        {
            "pid": os.getpid(),
            "api": f"http://127.0.0.1:{bound}",
            "started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "version": __version__,
        },
    )
    log.info("control plane of %s serving on http://127.0.0.1:%d (pid %d)", state_dir, bound, os.getpid())
    rotation = asyncio.create_task(logrotate.rotate_forever(state_dir), name="rollwise-logrotate")
    try:
        await stop.wait()
    finally:
        rotation.cancel()
        if not stopped:
            log.info("stopping; proxies and replicas keep running for the next control plane")
            await controller.shutdown(False)
        await http.stop()
        with contextlib.suppress(OSError, ValueError):
            if json.loads(info.read_text()).get("pid") == os.getpid():
                info.unlink()
        store.close()


def _lock(state_dir: Path) -> IO[str]:
    """One control plane per state directory. The lock goes with the process, even on SIGKILL."""
    f = open(layout.lock_file(state_dir), "a+")  # noqa: SIM115 (held for the daemon's life)
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        pid = "?"
        with contextlib.suppress(OSError, ValueError):
            pid = str(json.loads(layout.daemon_file(state_dir).read_text()).get("pid", "?"))
        raise DaemonError(f"a control plane is already running in {state_dir} (pid {pid})") from None
    return f


def _write_private(path: Path, doc: dict[str, object]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
        f.write("\n")
    os.replace(tmp, path)
