"""The demo service, run as a real process and spoken to over real HTTP."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.procs import free_port, wait_for


def demo_binary() -> str:
    path = Path(sys.executable).parent / "rollwise-demo"
    return str(path) if path.exists() else shutil.which("rollwise-demo") or "rollwise-demo"


def get(port: int, path: str = "/") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


Starter = Callable[..., tuple["subprocess.Popen[bytes]", int]]


@pytest.fixture
def start() -> Iterator[Starter]:
    procs: list[subprocess.Popen[bytes]] = []

    def run(**env: str) -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        proc = subprocess.Popen([demo_binary()], env={**os.environ, "PORT": str(port), **env}, stderr=subprocess.PIPE)
        procs.append(proc)
        wait_for(lambda: get(port, "/healthz")[0] == 200, what="demo readiness")
        return proc, port

    yield run
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def test_reports_its_version(start: Starter) -> None:
    _, port = start(DEMO_VERSION="v7")
    status, headers, body = get(port, "/anything")
    assert status == 200
    assert headers["X-Demo-Version"] == "v7"
    assert json.loads(body)["version"] == "v7"


def test_error_rate_is_exact_and_health_is_spared(start: Starter) -> None:
    _, port = start(DEMO_ERROR_RATE="0.3")
    statuses = [get(port)[0] for _ in range(100)]
    assert statuses.count(500) == 30
    assert all(get(port, "/healthz")[0] == 200 for _ in range(10))


def test_flag_file_changes_the_greeting_without_restart(start: Starter, tmp_path: Path) -> None:
    flags = tmp_path / "flags.json"

    def write(enabled: bool) -> None:
        doc = {
            "flags": {
                "new-greeting": {
                    "state": "ENABLED",
                    "variants": {"on": True, "off": False},
                    "defaultVariant": "on" if enabled else "off",
                }
            }
        }
        flags.write_text(json.dumps(doc))

    write(False)
    proc, port = start(DEMO_FLAGS_FILE=str(flags))
    assert json.loads(get(port)[2])["greeting"] == "hello"
    write(True)
    # The flagd provider polls the file's modification time (every 0.5 s by default).
    wait_for(lambda: json.loads(get(port)[2])["greeting"] == "hello, new world", what="the new greeting")
    assert proc.poll() is None


def test_sigterm_stops_cleanly(start: Starter) -> None:
    proc, _port = start()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_bad_setting_is_one_clear_line() -> None:
    result = subprocess.run(
        [demo_binary()], env={**os.environ, "DEMO_ERROR_RATE": "3"}, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "rollwise-demo: DEMO_ERROR_RATE must be between 0 and 1 (got 3.0)"
