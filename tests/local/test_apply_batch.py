"""`rollwise apply -f A -f B` against a real control plane: all files are applied together or none
is, whether the error is one lint finds before sending or one only the control plane can see."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.local import specs
from tests.local.plane import ROLLWISE, Plane
from tests.procs import free_port


def rollout(name: str, port: int, *, replicas: str = "1") -> str:
    return f"""apiVersion: rollwise.dev/v1alpha1
kind: Rollout
metadata:
  name: {name}
spec:
  replicas: {replicas}
  listen:
    port: {port}
  process:
    command: [rollwise-demo]
  strategy:
    canary:
      trafficRouting:
        local: {{}}
      analysis:
        templates: [{{templateName: health}}]
      steps:
        - setWeight: 50
"""


def nothing_applied(plane: Plane) -> None:
    assert plane.call("GET", "/v1/rollouts")["items"] == []
    listed = plane.cli("list").stdout
    assert "no rollouts" in listed, listed
    got = plane.cli("get", "web", check=False)
    assert got.returncode == 1 and "web" in got.stderr, got


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_field_error_in_the_second_file_applies_neither(plane: Plane, tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", specs.HEALTH + "---\n" + rollout("web", free_port()))
    bad = write(tmp_path, "bad.yaml", rollout("api", free_port(), replicas='"two"'))
    done = plane.cli("apply", "-f", good, "-f", bad, check=False)
    assert done.returncode == 1, done
    # spec.replicas is on line 6 of bad.yaml
    assert f"{bad}:6:3 spec.replicas: must be an integer (got 'two')" in done.stderr, done.stderr
    assert "good.yaml" not in done.stderr and "nothing was applied" in done.stderr
    nothing_applied(plane)


def test_an_error_only_the_control_plane_sees_applies_neither(plane: Plane, tmp_path: Path) -> None:
    # Each file alone lints clean; together the second takes the listener port of the first,
    # which only the control plane checks.
    port = free_port()
    good = write(tmp_path, "good.yaml", specs.HEALTH + "---\n" + rollout("web", port))
    bad = write(tmp_path, "bad.yaml", rollout("api", port))
    linted = subprocess.run([*ROLLWISE, "lint", good, bad], capture_output=True, text=True, timeout=120)
    assert linted.returncode == 0, linted
    done = plane.cli("apply", "-f", good, "-f", bad, check=False)
    assert done.returncode == 1, done
    assert f"{bad}:8:5 spec.listen.port: port {port} is already the listener of rollout 'web'" in done.stderr, (
        done.stderr
    )
    assert "1 problem in " in done.stderr and "nothing was applied" in done.stderr
    nothing_applied(plane)


def test_files_applied_together_see_each_other(plane: Plane, tmp_path: Path) -> None:
    # The template is in one file, the rollout naming it in another, both in one apply.
    template = write(tmp_path, "template.yaml", specs.HEALTH)
    web = write(tmp_path, "web.yaml", rollout("web", free_port()))
    done = plane.cli("apply", "-f", web, "-f", template)
    assert done.stdout.splitlines() == ["rollout/web created", "analysistemplate/health created"], done.stdout
    plane.wait("web", lambda s: s["phase"] == "Healthy", "web healthy")
    again = plane.cli("apply", "-f", web, "-f", template, "-f", web)
    assert again.stdout.splitlines() == ["rollout/web unchanged", "analysistemplate/health unchanged"], again.stdout
