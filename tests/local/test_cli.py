"""The rollout verbs through the CLI (subprocesses, as a user runs them): set, promote, pause,
resume, abort, undo, history, get, list, status and logs."""

from __future__ import annotations

from tests.local import specs
from tests.local.plane import Load, Plane
from tests.procs import wait_for


def test_promote_abort_and_undo_from_the_cli(plane: Plane) -> None:
    # A canary whose first pause waits for a human.
    plane.apply(specs.canary("v1", pause="pause: {}", analysis=False))
    v1 = plane.wait("web", lambda s: s["phase"] == "Healthy", "v1 healthy")["stableRevision"]
    with Load(*plane.endpoint("web"), threads=1, rate=50) as load:
        wait_for(lambda: load.served() >= 20, what="traffic through the proxy")

        out = plane.cli("set", "env", "web", "DEMO_VERSION=v2").stdout
        assert "rollout/web configured (generation 2)" in out
        paused = plane.wait("web", lambda s: s["phase"] == "Paused" and s["step"] == 1, "v2 waiting for promote")
        v2 = paused["currentRevision"]
        status = plane.cli("status", "web").stdout
        assert "▶ 2. pause (until promoted)" in status and "30%" in status and "70%" in status, status

        assert "paused" in plane.cli("pause", "web").stdout
        assert plane.cli("promote", "web", check=False).returncode == 0  # promote also lifts a user pause
        plane.wait("web", lambda s: s["phase"] == "Healthy" and s["stableRevision"] == v2, "v2 promoted")
        watched = plane.cli("status", "web", "-w")  # returns at once: Healthy
        assert "Healthy" in watched.stdout

        # v3 stops at the same pause; abort sends everything back to v2.
        plane.cli("set", "command", "web", "--", "rollwise-demo")  # unchanged argv: no new revision
        plane.cli("set", "env", "web", "DEMO_VERSION=v3")
        v3 = plane.wait("web", lambda s: s["phase"] == "Paused" and s["step"] == 1, "v3 paused")["currentRevision"]
        out = plane.cli("abort", "web").stdout
        assert "aborted" in out
        aborted = plane.wait("web", lambda s: s["phase"] == "Aborted", "v3 aborted")
        assert aborted["weights"] == {v2: 100}
        assert plane.cli("status", "web", "-w", check=False).returncode == 1  # watching an aborted rollout fails
        # Setting what the spec already says starts nothing, and says what would.
        again = plane.cli("set", "env", "web", "DEMO_VERSION=v3")
        assert "rollout/web unchanged" in again.stdout
        assert f"revision {v3}, which was aborted; `rollwise retry web` rolls it out again" in again.stderr

        # undo mid-update goes back to the stable revision at once.
        assert "undo" in plane.cli("undo", "web").stdout
        plane.wait("web", lambda s: s["phase"] == "Healthy" and s["currentRevision"] == v2, "back on v2")
        again = plane.cli("set", "env", "web", "DEMO_VERSION=v3")
        assert "rollout/web unchanged" in again.stdout
        assert f"revision {v3}, which an undo set aside (revision {v2} runs)" in again.stderr, again.stderr
        assert "`rollwise undo web --to-revision 3` rolls it out again" in again.stderr, again.stderr

        # History numbers the revisions; undo --to-revision 1 rolls v1 out again, as a canary.
        history = plane.call("GET", "/v1/rollouts/web/history")["items"]
        numbers = {h["revision"]: h["number"] for h in history}
        assert (numbers[v1], numbers[v3], numbers[v2]) == (1, 3, 4)  # an undo renumbers, like kubectl
        table = plane.cli("history", "web").stdout
        assert v1 in table and v3 in table and "DEMO_VERSION=v3" in table
        # v1, the stable before v2, is still up (scale-down delay): the undo is fast-tracked.
        assert "fast-tracked" in plane.cli("undo", "web", "--to-revision", "1").stdout
        plane.wait("web", lambda s: s["phase"] == "Healthy" and s["stableRevision"] == v1, "v1 stable again")
        wait_for(lambda: load.log[-1][2] == "v1", what="v1 serving again")

        # promote --full skips the remaining steps.
        plane.cli("set", "env", "web", "DEMO_VERSION=v4")
        v4 = plane.wait("web", lambda s: s["phase"] == "Paused" and s["step"] == 1, "v4 paused")["currentRevision"]
        assert "promoting in full" in plane.cli("promote", "web", "--full").stdout
        plane.wait("web", lambda s: s["phase"] == "Healthy" and s["stableRevision"] == v4, "v4 promoted")

    assert load.platform_failures() == [], load.platform_failures()
    assert {"v1", "v2", "v3", "v4"} <= set(load.versions)
    get = plane.cli("get", "web").stdout
    assert "Phase:      Healthy" in get and f"{v4} 100%" in get
    assert "web" in plane.cli("list").stdout
    logs = plane.cli("logs", "web", "--tail", "5").stdout
    assert "==> " in logs and "started pid" in logs
    one = plane.cli("logs", "web", "--revision", v2, "--replica", "0", "--tail", "50").stdout
    assert "started pid" in one
    missing = plane.cli("logs", "web", "--revision", "nope", check=False)
    assert missing.returncode == 1 and "no logs" in missing.stderr
