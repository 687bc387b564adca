"""The control plane's own life: `rollwise up` detached, SIGTERM leaving the data plane running
for the next control plane, `rollwise down` stopping everything, a dead proxy started again on
its port, and a deleted rollout taking its processes with it."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.local import specs
from tests.local.plane import ROLLWISE, Plane
from tests.procs import wait_for


def version_at(port: int) -> str | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        resp.read()
        return resp.getheader("x-demo-version")
    except OSError:
        return None
    finally:
        conn.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        # Not ours to reap (a replica or proxy of the control plane): a zombie is gone too.
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return False
    return True


def rollwise(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ROLLWISE, *args, "--dir", str(state)], capture_output=True, text=True, timeout=180)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / "state"
    try:
        yield state
    finally:
        down = rollwise(state, "down")
        if down.returncode != 0 and (state / "proxies" / "web").exists():
            Plane(state).start().stop()  # the test stopped half way: adopt what is left, and stop it


def test_sigterm_leaves_traffic_flowing_until_down(state: Path, tmp_path: Path) -> None:
    up = rollwise(state, "up")
    assert up.returncode == 0 and "control plane running" in up.stdout, up
    assert "already running" in rollwise(state, "up").stdout
    spec = tmp_path / "web.yaml"
    spec.write_text(specs.canary("v1", analysis=False))
    assert rollwise(state, "apply", "-f", str(spec)).stdout.strip() == "rollout/web created"

    def details() -> dict[str, Any]:
        return dict(json.loads(rollwise(state, "get", "web", "-o", "json").stdout))

    doc = wait_for(lambda: (d := details())["summary"]["phase"] == "Healthy" and d, timeout=90, what="v1 healthy")
    port = int(doc["summary"]["endpoints"]["main"].rsplit(":", 1)[1])
    replicas = [r["pid"] for r in doc["replicas"]]
    proxy_pid = json.loads((state / "proxies" / "web" / "main.ready.json").read_text())["pid"]
    daemon_pid = json.loads((state / "daemon.json").read_text())["pid"]

    os.kill(daemon_pid, signal.SIGTERM)
    wait_for(lambda: not alive(daemon_pid), timeout=60, what="the control plane to exit")
    assert not (state / "daemon.json").exists()
    assert version_at(port) == "v1" and all(alive(p) for p in replicas) and alive(proxy_pid)
    gone = rollwise(state, "get", "web")
    assert gone.returncode == 1 and "no control plane running" in gone.stderr

    assert rollwise(state, "up").returncode == 0  # adopts the proxy and the replicas
    assert sorted(r["pid"] for r in details()["replicas"]) == sorted(replicas)
    assert json.loads((state / "proxies" / "web" / "main.ready.json").read_text())["pid"] == proxy_pid

    down = rollwise(state, "down")
    assert down.returncode == 0 and "stopped" in down.stdout
    assert version_at(port) is None
    wait_for(lambda: not any(alive(p) for p in [*replicas, proxy_pid]), timeout=30, what="every process stopped")


def test_a_dead_proxy_is_started_again_on_its_port(plane: Plane) -> None:
    plane.apply(specs.canary("v1", analysis=False, replicas=1))
    plane.wait("web", lambda s: s["phase"] == "Healthy", "v1 healthy")
    _, port = plane.endpoint("web")
    ready = plane.dir / "proxies" / "web" / "main.ready.json"
    pid = json.loads(ready.read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: json.loads(ready.read_text())["pid"] != pid and version_at(port) == "v1",
        timeout=60,
        what="the proxy back on its port",
    )
    reasons = [e["reason"] for e in plane.call("GET", "/v1/rollouts/web/events")["items"]]
    assert reasons.count("ProxyStarted") == 2


def test_deleting_a_rollout_stops_its_proxy_and_replicas(plane: Plane) -> None:
    plane.apply(specs.canary("v1", analysis=False, replicas=2))
    plane.wait("web", lambda s: s["phase"] == "Healthy", "v1 healthy")
    _, port = plane.endpoint("web")
    pids = [r["pid"] for r in plane.rollout("web")["replicas"]]
    assert plane.call("DELETE", "/v1/rollouts/web") == {"deleted": True}
    assert version_at(port) is None
    wait_for(lambda: not any(alive(p) for p in pids), timeout=30, what="the replicas stopped")
    assert plane.request("GET", "/v1/rollouts/web")[0] == 404
