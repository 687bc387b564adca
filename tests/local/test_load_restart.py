"""The control plane is killed (SIGKILL) in the middle of a canary under 250 requests/s: the proxy
never stops serving, and a control plane started again adopts the proxy and the replicas, finds
the rollout where it was (the same paused step) and carries on to the same outcome."""

from __future__ import annotations

import time

from tests.local import load_specs
from tests.local.load import LoadGenerator, rate_of, settled, share
from tests.local.plane import Plane


def test_killed_control_plane_under_load(plane: Plane) -> None:
    name = "load-restart"
    plane.apply(load_specs.canary(name, "v1"))
    v1 = plane.wait(name, lambda s: s["phase"] == "Healthy", "v1 healthy")["stableRevision"]
    with LoadGenerator(*plane.endpoint(name), rate=250.0) as load:
        load.wait_count_since(0, 50, timeout=30)
        begin = time.monotonic()
        plane.apply(load_specs.canary(name, "v2"))
        v2 = plane.summary(name)["currentRevision"]
        at_20 = {v1: 80, v2: 20}
        plane.wait(name, lambda s: s["phase"] == "Paused" and s["weights"] == at_20, "paused at 20%")
        pids = {(r["revision"], r["pid"]) for r in plane.rollout(name)["replicas"]}

        plane.kill()
        down = time.monotonic()
        while_down = load.wait_count_since(down, 1000, timeout=60)
        assert abs(share(while_down, "v2") - 20) <= 3  # the proxy kept the table in force

        plane.start()
        resumed = plane.wait(name, lambda s: s["phase"] == "Paused", "the rollout found where it was")
        assert resumed["weights"] == at_20 and resumed["currentRevision"] == v2
        assert {(r["revision"], r["pid"]) for r in plane.rollout(name)["replicas"]} == pids  # adopted
        status, doc = plane.command(name, "promote")
        assert status == 200, doc
        plane.wait(name, lambda s: s["phase"] == "Paused" and s["weights"] == {v1: 50, v2: 50}, "paused at 50%")
        status, doc = plane.command(name, "abort")
        assert status == 200, doc
        plane.wait(name, lambda s: s["phase"] == "Aborted" and s["weights"] == {v1: 100}, "aborted")
        settled(plane, name, v1, 2)
        after = load.wait_count_since(time.monotonic(), 100, timeout=30)
        end = time.monotonic()
    window = load.since(begin, end)
    failures = LoadGenerator.platform_failures(window)
    print(f"restart: {len(window)} requests at {rate_of(window):.0f}/s, {len(while_down)} with no control plane")
    assert not failures, failures
    assert rate_of(window) >= 200
    assert {s.version for s in after} == {"v1"}
    events = [e["reason"] for e in plane.call("GET", f"/v1/rollouts/{name}/events")["items"]]
    assert events.count("ProxyStarted") == 1, events  # adopted, never restarted
