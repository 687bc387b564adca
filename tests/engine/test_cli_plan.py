"""`rollwise plan`: the command on a tiny typer app, as app.py will register it."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from rollwise.cli import plan as plan_cli

ROLLOUT = """\
apiVersion: rollwise.dev/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  replicas: 5
  process:
    command: ["web", "--port", "$(PORT)"]
  strategy:
    canary:
      trafficRouting:
        local: {}
      analysis:
        templates:
          - templateName: errors
        startingStep: 2
      steps:
        - setWeight: 20
        - pause: {duration: 1m}
        - setHeaderRoute:
            name: testers
            match:
              - headers: [{name: x-tester, exact: "yes"}]
        - setWeight: 50
        - pause: {}
        - analysis:
            templates:
              - templateName: latency
---
apiVersion: rollwise.dev/v1alpha1
kind: Rollout
metadata:
  name: worker
spec:
  replicas: 2
  process:
    command: ["worker"]
  strategy:
    blueGreen:
      activeService: worker
      autoPromotionEnabled: false
"""


def app() -> typer.Typer:
    a = typer.Typer()
    a.command("plan")(plan_cli.plan)

    @a.command("version")
    def version() -> None:  # a second command, so that "plan" is a sub-command as in rollwise
        typer.echo("0")

    return a


def test_plan_prints_each_step_with_weights_replicas_pauses_and_analysis(tmp_path: Path) -> None:
    f = tmp_path / "rollout.yaml"
    f.write_text(ROLLOUT)
    result = CliRunner().invoke(app(), ["plan", "-f", str(f)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Rollout web: canary via the local router, 5 replicas" in out
    lines = out.splitlines()

    def line(step: str) -> str:
        return next(x for x in lines if step in x)

    assert "stable 80%, new 20%" in line("2/6 pause 1m") and "stable 5, new 1" in line("2/6 pause 1m")
    assert "waits 60s" in line("2/6 pause 1m")
    assert "passed at once" in line("3/6 setHeaderRoute testers")
    assert "stable 50%, new 50%" in line("5/6 pause") and "stable 5, new 3" in line("5/6 pause")
    assert "match testers → new" in line("5/6 pause") and "waits for `rollwise promote`" in line("5/6 pause")
    assert "analysis step: latency (assumed to pass)" in line("6/6 analysis latency")
    assert "analysis background: errors" in out
    assert "new 100%" in line("done")
    # The second rollout in the file gets its own plan
    assert "Rollout worker: blueGreen, 2 replicas" in out
    assert "preview → new" in out


def test_plan_of_a_first_deployment(tmp_path: Path) -> None:
    f = tmp_path / "rollout.yaml"
    f.write_text(ROLLOUT.split("---")[1])
    result = CliRunner().invoke(app(), ["plan", "-f", str(f), "--first"])
    assert result.exit_code == 0, result.output
    assert "first deployment" in result.output and "new 100%" in result.output


def test_plan_reports_an_invalid_file_as_lint_does(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(ROLLOUT.replace("replicas: 5", "replicas: -1"))
    result = CliRunner().invoke(app(), ["plan", "-f", str(f)])
    assert result.exit_code == 1
    assert "spec.replicas" in result.output


def test_plan_needs_a_rollout(tmp_path: Path) -> None:
    f = tmp_path / "empty.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    result = CliRunner().invoke(app(), ["plan", "-f", str(f)])
    assert result.exit_code == 1 and "no Rollout" in result.output
