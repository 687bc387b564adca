"""For the control plane: start the proxy as its own process and drive it over the admin port.

The proxy runs apart from the control plane so that traffic keeps flowing while the control plane
restarts; a restarted control plane finds the running proxy again from the ready file (its pid
and ports) and carries on with `ProxyAdmin`."""

from __future__ import annotations

import http.client
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollwise.platforms.local.proxy.routes import RouteTable, RouteTableError


@dataclass(frozen=True)
class Ready:
    pid: int
    port: int
    admin_port: int


def command(
    listen: tuple[str, int],
    admin: tuple[str, int],
    ready_file: Path,
    routes_file: Path | None = None,
    admin_token_file: Path | None = None,
    extra: list[str] | None = None,
) -> list[str]:
    """The argv that starts a proxy process (argv, never a shell)."""
    argv = [sys.executable, "-m", "rollwise.platforms.local.proxy"]
    argv += ["--listen", f"{listen[0]}:{listen[1]}", "--admin", f"{admin[0]}:{admin[1]}"]
    argv += ["--ready-file", str(ready_file)]
    if routes_file is not None:
        argv += ["--routes", str(routes_file)]
    if admin_token_file is not None:
        argv += ["--admin-token-file", str(admin_token_file)]
    return argv + (extra or [])


def read_ready(ready_file: Path) -> Ready | None:
    """The running proxy the ready file names, or None if there is none (no file, or its process
    is gone)."""
    try:
        doc = json.loads(ready_file.read_text())
        ready = Ready(pid=int(doc["pid"]), port=int(doc["port"]), admin_port=int(doc["admin_port"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(ready.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, someone else's
    return ready


class AdminError(RuntimeError):
    pass


class ProxyAdmin:
    def __init__(self, port: int, host: str = "127.0.0.1", token: str | None = None, timeout: float = 5.0) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.timeout = timeout

    def _call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        except OSError as exc:
            raise AdminError(f"proxy admin at {self.host}:{self.port} unreachable: {exc}") from exc
        finally:
            conn.close()

    def _json(self, path: str) -> Any:
        status, data = self._call("GET", path)
        if status != 200:
            raise AdminError(f"GET {path}: {status} {data.decode(errors='replace').strip()}")
        return json.loads(data)

    def healthy(self) -> bool:
        try:
            return self._call("GET", "/healthz")[0] == 200
        except AdminError:
            return False

    def swap(self, table: RouteTable) -> int:
        """Swap the whole table in; returns its generation. A refused table raises
        RouteTableError with the proxy's problems, and the old table keeps serving."""
        status, data = self._call("PUT", "/routes", json.dumps(table.to_dict()).encode())
        if status == 400:
            raise RouteTableError(json.loads(data).get("problems") or ["refused"])
        if status != 200:
            raise AdminError(f"PUT /routes: {status} {data.decode(errors='replace').strip()}")
        return int(json.loads(data)["generation"])

    def routes(self) -> tuple[int, RouteTable | None]:
        """Read the table back (routers verify what they applied)."""
        doc = self._json("/routes")
        table = doc.get("table")
        return int(doc["generation"]), None if table is None else RouteTable.from_dict(table)

    def stats(self) -> dict[str, Any]:
        return dict(self._json("/stats"))

    def shadow(self) -> dict[str, Any]:
        return dict(self._json("/shadow"))

    def metrics(self) -> str:
        status, data = self._call("GET", "/metrics")
        if status != 200:
            raise AdminError(f"GET /metrics: {status}")
        return data.decode()
