"""The job provider running real commands (argv, never a shell of ours)."""

from __future__ import annotations

import sys
import time
from typing import Any

from rollwise.analysis.providers import measure_safely
from rollwise.analysis.providers.job import KUBERNETES_JOB_MISSING, JobMeasurer
from rollwise.spec.analysis import Measurement
from tests.analysis.helpers import context, metric, run


def measure(command: list[str], *, args: dict[str, str] | None = None, **fields: Any) -> Measurement:
    job: dict[str, Any] = {"command": command}
    for key in ("env", "timeout"):
        if key in fields:
            job[key] = fields.pop(key)
    m = metric(name="check", provider={"job": job}, **fields)
    return run(JobMeasurer().measure(m, args or {}, context({"PATH": "/usr/bin:/bin"})))


def test_exit_zero_is_successful() -> None:
    m = measure(["true"])
    assert m.phase == "Successful" and "exited with status 0" in (m.message or "")


def test_non_zero_exit_fails_with_its_output() -> None:
    m = measure(["sh", "-c", "echo 'smoke test: 2 of 5 failed' >&2; exit 3"])
    assert m.phase == "Failed"
    assert "exited with status 3" in (m.message or "") and "2 of 5 failed" in (m.message or "")


def test_args_and_env_reach_the_command_without_a_shell() -> None:
    # The argument contains shell syntax; run as argv it is one harmless word.
    m = measure(
        [
            sys.executable,
            "-c",
            "import os, sys; sys.exit(0 if sys.argv[1] == '$(reboot); x' and os.environ['WHO'] == 'b' else 1)",
            "{{args.weird}}",
        ],
        args={"weird": "$(reboot); x", "rev": "b"},
        env={"WHO": "{{args.rev}}"},
    )
    assert m.phase == "Successful", m.message


def test_conditions_judge_the_output() -> None:
    script = "import json; print(json.dumps({'passed': 48, 'total': 50}))"
    ok = measure([sys.executable, "-c", script], successCondition="result.passed * 100 / result.total >= 95")
    assert ok.phase == "Successful", ok.message
    low = measure([sys.executable, "-c", script], successCondition="result.passed == result.total")
    assert low.phase == "Failed"


def test_timeout_kills_the_command_and_its_children() -> None:
    started = time.monotonic()
    m = measure(["sh", "-c", "sleep 30 & sleep 30; wait"], timeout="300ms")
    assert m.phase == "Error"
    assert "did not finish within 0.3s and was killed" in (m.message or "")
    assert time.monotonic() - started < 10  # the child sleeps did not hold the pipes open


def test_missing_program_is_an_error() -> None:
    m = measure(["/nonexistent/check"])
    assert m.phase == "Error" and "command not found: '/nonexistent/check'" in (m.message or "")


def test_death_by_signal_is_an_error() -> None:
    m = measure(["sh", "-c", "kill -TERM $$"])
    assert m.phase == "Error" and "killed by SIGTERM" in (m.message or "")


def test_missing_arg_is_an_error() -> None:
    m = measure(["echo", "{{args.nope}}"])
    assert m.phase == "Error" and "command[1] uses {{args.nope}}" in (m.message or "")


def test_a_kubernetes_job_outside_kubernetes_says_what_to_use_instead() -> None:
    m = metric(name="k8s", provider={"job": {"spec": {"template": {"spec": {"containers": []}}}}})
    out = run(measure_safely(m, {}, context()))
    assert out.phase == "Error"
    assert out.message == KUBERNETES_JOB_MISSING
    assert "give provider.job.command instead" in KUBERNETES_JOB_MISSING
