"""Blue-green on the local platform: the preview listener serves the new revision before the
switch while the main one keeps serving the active revision; promote switches all at once."""

from __future__ import annotations

import http.client

from tests.local import specs
from tests.local.plane import Load, Plane
from tests.procs import free_port, wait_for


def version_at(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        resp.read()
        return resp.getheader("x-demo-version") or f"status {resp.status}"
    finally:
        conn.close()


def test_preview_port_serves_the_new_revision_before_promotion(plane: Plane) -> None:
    preview_port = free_port()
    plane.apply(specs.blue_green("v1", preview_port=preview_port))
    v1 = plane.wait("bg", lambda s: s["phase"] == "Healthy", "v1 healthy")["stableRevision"]
    _, main_port = plane.endpoint("bg")
    assert plane.summary("bg")["endpoints"]["preview"] == f"http://127.0.0.1:{preview_port}"
    assert version_at(preview_port) == "v1"  # no update: the preview serves what users get

    with Load("127.0.0.1", main_port, threads=1, rate=50) as load:
        plane.apply(specs.blue_green("v2", preview_port=preview_port))
        waiting = plane.wait("bg", lambda s: s["phase"] == "Paused", "v2 previewed, waiting for promote")
        v2 = waiting["currentRevision"]
        assert waiting["weights"] == {v1: 100}
        assert {version_at(preview_port) for _ in range(10)} == {"v2"}
        assert {version_at(main_port) for _ in range(10)} == {"v1"}

        status, doc = plane.command("bg", "promote")
        assert status == 200, doc
        plane.wait("bg", lambda s: s["phase"] == "Healthy" and s["stableRevision"] == v2, "v2 active")
        wait_for(lambda: load.log and load.log[-1][2] == "v2", what="users on v2")
        assert version_at(main_port) == "v2"
    assert load.platform_failures() == []
    # The switch was atomic: once v2 answered, v1 never did again.
    first_v2 = next(i for i, (_, _, v) in enumerate(load.log) if v == "v2")
    assert {v for _, _, v in load.log[first_v2:]} == {"v2"}
