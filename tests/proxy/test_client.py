"""The control plane's side: start a proxy process with `command`, find it with `read_ready`,
drive it with `ProxyAdmin`; a proxy outlives the process that started it."""

from __future__ import annotations

import http.client
import subprocess
from pathlib import Path

import pytest

from rollwise.platforms.local.proxy.client import ProxyAdmin, command, read_ready
from rollwise.platforms.local.proxy.routes import RouteTable, RouteTableError
from tests.procs import free_port, wait_for
from tests.proxy.conftest import Upstreams, _env, get, table


def test_control_plane_drives_a_proxy_process(tmp_path: Path, upstreams: Upstreams) -> None:
    ready_file = tmp_path / "proxy.json"
    token = tmp_path / "token"
    token.write_text("t0k\n")
    argv = command(("127.0.0.1", free_port()), ("127.0.0.1", 0), ready_file, admin_token_file=token)
    proc = subprocess.Popen(argv, env=_env())
    try:
        ready = wait_for(lambda: read_ready(ready_file), what="proxy ready")
        assert ready.pid == proc.pid
        admin = ProxyAdmin(ready.admin_port, token="t0k")
        assert admin.healthy()
        assert admin.routes() == (0, None)
        good = RouteTable.from_dict(table({"a": 100}, upstreams, also=["b"]))
        assert admin.swap(good) == 1
        assert admin.routes() == (1, good)
        with pytest.raises(RouteTableError, match="sum to 100"):
            admin.swap(RouteTable.from_dict({**good.to_dict(), "weights": {"a": 50}}))
        assert admin.routes()[0] == 1
        assert get(http.client.HTTPConnection("127.0.0.1", ready.port, timeout=10))[:2] == (200, "a")
        assert admin.stats()["revisions"]["a"]["requests"]["2xx"] == 1
        assert "rollwise_proxy_requests_total" in admin.metrics()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert read_ready(ready_file) is None  # its process is gone
