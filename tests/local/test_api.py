"""The API's edges: the bearer token, refused specs (422 with file:line problems, nothing
applied), and the CLI's one-line failures."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.local import specs
from tests.local.plane import ROLLWISE, Plane

BAD = """apiVersion: rollwise.dev/v1alpha1
kind: Rollout
metadata:
  name: bad
spec:
  replicas: 2
  process:
    command: [rollwise-demo]
  strategy:
    canary:
      trafficRouting:
        local: {}
      steps:
        - setWeight: 120
        - pause: {duration: soon}
"""


def test_every_v1_request_needs_the_token_but_metrics_do_not(plane: Plane) -> None:
    for token in ("", "wrong"):
        status, doc = plane.request("GET", "/v1/rollouts", token=token)
        assert status == 401 and "token" in doc["error"]
        status, doc = plane.request("POST", "/v1/apply", {"yaml": specs.HEALTH}, token=token)
        assert status == 401
    assert plane.request("GET", "/v1/healthz")[1]["ok"] is True
    status, text = plane.request("GET", "/metrics", token="")
    assert status == 200 and "rollwise_rollout_phase" in text


def test_a_bad_spec_is_refused_with_its_positions_and_nothing_is_applied(plane: Plane, tmp_path: Path) -> None:
    text = specs.HEALTH + "---\n" + BAD
    status, doc = plane.request("POST", "/v1/apply", {"yaml": text, "file": "bad.yaml"})
    assert status == 422, doc
    problems = doc["problems"]
    line = text.splitlines().index("        - setWeight: 120") + 1
    assert (
        f"bad.yaml:{line}:11 spec.strategy.canary.steps[0].setWeight: must be between 0 and 100 (got 120)" in problems
    )
    assert any(p.startswith(f"bad.yaml:{line + 1}:") and "duration" in p for p in problems), problems
    assert plane.call("GET", "/v1/rollouts")["items"] == []
    # The template in the same text was not applied either: a rollout naming it is told so.
    doc = plane.apply(specs.canary("v1"))
    assert any("'health' is not among the linted files" in w for w in doc["warnings"]), doc
    # The CLI prints every problem and one line of its own, exit 1, no traceback.
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    result = plane.cli("apply", "-f", str(bad), check=False)
    assert result.returncode == 1
    assert f"{bad}:14:" in result.stderr and "nothing was applied" in result.stderr
    assert "Traceback" not in result.stderr
    # What lint cannot know is refused by the control plane: a port another rollout listens on.
    port = plane.endpoint("web")[1]
    taken = specs.canary("v1", name="other").replace("  replicas: 2", f"  replicas: 1\n  listen: {{port: {port}}}")
    status, doc = plane.request("POST", "/v1/apply", {"yaml": taken, "file": "other.yaml"})
    assert status == 422, doc
    assert any(f"spec.listen.port: port {port} is already the listener of rollout 'web'" in p for p in doc["problems"])
    assert [s["name"] for s in plane.call("GET", "/v1/rollouts")["items"]] == ["web"]


def test_unknown_rollouts_and_refused_commands(plane: Plane) -> None:
    status, doc = plane.request("GET", "/v1/rollouts/nope")
    assert status == 404 and "not found" in doc["error"]
    plane.apply(specs.canary("v1", analysis=False))
    plane.wait("web", lambda s: s["phase"] == "Healthy", "v1 healthy")
    status, doc = plane.command("web", "promote")
    assert status == 409 and "no update in progress" in doc["error"]
    assert plane.command("web", "jump")[0] == 400
    result = plane.cli("abort", "web", check=False)
    assert result.returncode == 1 and result.stderr.strip() == "rollwise: no update in progress: nothing to abort"
    assert plane.call("DELETE", "/v1/rollouts/web") == {"deleted": True}
    assert plane.call("GET", "/v1/rollouts")["items"] == []


def test_the_cli_says_when_no_control_plane_runs(tmp_path: Path) -> None:
    result = subprocess.run(
        [*ROLLWISE, "list", "--dir", str(tmp_path / "none")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"rollwise: no control plane running in {tmp_path / 'none'} (start one with `rollwise up`)"
    )
    usage = subprocess.run([*ROLLWISE, "get"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2
