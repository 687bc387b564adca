"""A canary end to end on real processes: v1, then v2 promoted through its steps with builtin
success-rate analysis while traffic flows through the proxy, then v3 failing 30% of requests,
aborted by the analysis with all traffic back on v2."""

from __future__ import annotations

import time

from tests.local import specs
from tests.local.plane import Load, Plane
from tests.procs import wait_for


def healthy_on(version_rev: str | None = None):  # type: ignore[no-untyped-def]
    def check(s: dict[str, object]) -> bool:
        if s["phase"] != "Healthy":
            return False
        return version_rev is None or s["stableRevision"] == version_rev

    return check


def test_canary_promotes_a_good_version_and_aborts_a_bad_one(plane: Plane) -> None:
    plane.apply(specs.HEALTH + "---" + specs.canary("v1"))
    v1 = plane.wait("web", lambda s: s["phase"] == "Healthy", "v1 healthy")["stableRevision"]
    with Load(*plane.endpoint("web")) as load:
        wait_for(lambda: load.served() >= 50, what="traffic through the proxy")

        # v2: through every step, with the analysis watching, to 100%.
        plane.apply(specs.canary("v2"))
        rollout = plane.rollout("web")
        v2 = rollout["summary"]["currentRevision"]
        assert v2 != v1
        seen_steps: set[int] = set()

        def promoted(s: dict[str, object]) -> bool:
            if isinstance(s["step"], int):
                seen_steps.add(s["step"])
            return s["phase"] == "Healthy" and s["stableRevision"] == v2

        plane.wait("web", promoted, "v2 promoted")
        assert {1, 3} <= seen_steps  # the two pauses were observed
        mark = time.monotonic()
        wait_for(lambda: len(load.since(mark)) >= 50, what="traffic after the promotion")
        assert {v for _, _, v in load.since(mark)} == {"v2"}
        runs = plane.rollout("web")["analysis"]
        background = [r for r in runs if r["kind"] == "background" and r["revision"] == v2]
        assert background and background[-1]["phase"] == "Successful", runs

        # v3 fails 30% of its requests: the background analysis fails and aborts at once.
        plane.apply(specs.canary("v3", error_rate=0.3))
        v3 = plane.summary("web")["currentRevision"]
        aborted = plane.wait("web", lambda s: s["phase"] == "Aborted", "v3 aborted", timeout=60)
        assert aborted["weights"] == {v2: 100}
        assert aborted["stableRevision"] == v2
        mark = time.monotonic()
        wait_for(lambda: len(load.since(mark)) >= 50, what="traffic after the abort")
        assert {(status, v) for _, status, v in load.since(mark)} == {(200, "v2")}
        events = plane.call("GET", "/v1/rollouts/web/events")["items"]
        reasons = [e["reason"] for e in events]
        assert "AnalysisFailed" in reasons and "Aborted" in reasons, reasons
        v3_errors = [t for t, status, v in load.log if v == "v3" and status == 500]
        back = next(t for t, _, v in load.log if v3_errors and t > v3_errors[-1] and v == "v2")
        print(f"v3 {v3}: first error to 100% on v2 in {back - v3_errors[0]:.1f}s; {load.total} requests")
    assert load.platform_failures() == [], load.platform_failures()
    assert load.statuses[500] > 0  # v3's own errors reached users while it had weight
    assert set(load.versions) == {"v1", "v2", "v3"}
