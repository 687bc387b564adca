"""The control plane dies (SIGKILL) in the middle of a rollout: the proxy keeps serving, and a
control plane started again on the same state directory adopts the proxy and the replicas and
finishes the rollout with the outcome it would have had."""

from __future__ import annotations

import pytest

from tests.local import specs
from tests.local.plane import Load, Plane
from tests.procs import wait_for


@pytest.mark.parametrize(("version", "error_rate", "outcome"), [("v2", 0.0, "Healthy"), ("v3", 0.3, "Aborted")])
def test_killed_control_plane_mid_rollout(plane: Plane, version: str, error_rate: float, outcome: str) -> None:
    plane.apply(specs.HEALTH + "---" + specs.canary("v1"))
    v1 = plane.wait("web", lambda s: s["phase"] == "Healthy", "v1 healthy")["stableRevision"]
    host, port = plane.endpoint("web")
    with Load(host, port) as load:
        wait_for(lambda: load.served() >= 50, what="traffic through the proxy")
        plane.apply(specs.canary(version, error_rate=error_rate))
        new = plane.wait("web", lambda s: s["weights"].get(s["currentRevision"], 0) > 0, "canary weighted")[
            "currentRevision"
        ]
        pids = {(r["revision"], r["pid"]) for r in plane.rollout("web")["replicas"]}

        plane.kill()
        served = load.served()
        wait_for(lambda: load.served() >= served + 100, what="traffic while the control plane is down")

        plane.start()
        if outcome == "Healthy":
            done = plane.wait("web", lambda s: s["phase"] == "Healthy" and s["stableRevision"] == new, "promoted")
            assert done["weights"] == {new: 100}
        else:
            done = plane.wait("web", lambda s: s["phase"] == "Aborted", "aborted", timeout=60)
            assert done["weights"] == {v1: 100} and done["stableRevision"] == v1
        # Adopted, not restarted: the replicas running before the kill are the ones serving now.
        after = {(r["revision"], r["pid"]) for r in plane.rollout("web")["replicas"]}
        assert {p for p in pids if p[0] == v1} <= after
        served = load.served()
        wait_for(lambda: load.served() >= served + 50, what="traffic after the restart")
    assert load.platform_failures() == [], load.platform_failures()
    events = [e["reason"] for e in plane.call("GET", "/v1/rollouts/web/events")["items"]]
    assert events.count("ProxyStarted") == 1, events  # the proxy was adopted, never restarted
