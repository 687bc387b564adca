"""Run the proxy as its own process:

    python -m rollwise.platforms.local.proxy --listen 127.0.0.1:8080 --admin 127.0.0.1:8081 \\
        [--routes table.json] [--ready-file ready.json] [--admin-token-file token]

Port 0 picks a free port; the ports actually bound are written to --ready-file (JSON, written
atomically) once both listeners accept. SIGTERM or SIGINT: stop accepting, finish requests in
flight (up to --grace seconds), exit 0. Errors are one line on stderr and exit status 1 (bad
table or listen address) or 2 (usage)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import sys
from pathlib import Path

from rollwise.platforms.local.proxy import native
from rollwise.platforms.local.proxy.routes import RouteTable, RouteTableError
from rollwise.platforms.local.proxy.server import ProxyServer
from rollwise.platforms.local.proxy.settings import ProxySettings


def _address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rollwise.platforms.local.proxy", description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", type=_address, default=("127.0.0.1", 8080), help="data port (HOST:PORT)")
    p.add_argument("--admin", type=_address, default=("127.0.0.1", 0), help="admin port (HOST:PORT)")
    p.add_argument("--routes", type=Path, help="initial route table (JSON)")
    p.add_argument("--ready-file", type=Path, help="where to write the bound ports once serving")
    p.add_argument("--admin-token-file", type=Path, help="file holding the admin bearer token")
    p.add_argument("--connect-timeout", type=float, default=ProxySettings.connect_timeout)
    p.add_argument("--read-timeout", type=float, default=ProxySettings.read_timeout)
    p.add_argument("--mirror-timeout", type=float, default=ProxySettings.mirror_timeout)
    p.add_argument("--mirror-max-inflight", type=int, default=ProxySettings.mirror_max_inflight)
    p.add_argument("--grace", type=float, default=10.0, help="seconds to finish requests in flight on stop")
    p.add_argument("--no-uvloop", action="store_true", help="use asyncio's own loop")
    return p


async def _serve(args: argparse.Namespace) -> None:
    settings = ProxySettings(
        connect_timeout=args.connect_timeout,
        read_timeout=args.read_timeout,
        mirror_timeout=args.mirror_timeout,
        mirror_max_inflight=args.mirror_max_inflight,
    )
    token = args.admin_token_file.read_text().strip() if args.admin_token_file else None
    table = RouteTable.from_dict(json.loads(args.routes.read_text())) if args.routes else None
    build, reason = native.ACTIVE
    print(f"rollwise proxy: {build} build" + (f" ({reason})" if reason else ""), file=sys.stderr, flush=True)
    server = ProxyServer(settings, admin_token=token)
    await server.start(args.listen[0], args.listen[1], args.admin[0], args.admin[1], table=table)
    # Everything built so far lives as long as the process: keep the collector from walking it
    # again and again, and collect young objects less often (the hot path makes no cycles).
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.ready_file:
        tmp = args.ready_file.with_name(args.ready_file.name + ".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "port": server.port, "admin_port": server.admin_port}))
        tmp.replace(args.ready_file)
    await stop.wait()
    await server.stop(args.grace)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        if args.no_uvloop:
            asyncio.run(_serve(args))
        else:
            import uvloop

            uvloop.run(_serve(args))
    except RouteTableError as exc:
        sys.exit(f"rollwise proxy: {exc}")
    except (OSError, ValueError) as exc:
        sys.exit(f"rollwise proxy: {exc}")


if __name__ == "__main__":
    main()
