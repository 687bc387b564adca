"""A progressive flag rollout driven by hand on the local platform: --promote skips to the next
step, --resume goes on from the pause an inconclusive verdict left it in, with a fresh analysis.
The analysis is a webhook metric answered by an HTTP server of the test on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from rollwise.flags.progressive import FlagRolloutError, FlagRolloutSpec, decide, promote, resume, start
from tests.flags.test_local_flags import FLAGS, start_web
from tests.local.plane import DEADLINE, Plane
from tests.procs import wait_for


def test_promote_and_resume_follow_the_step_model() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    steps = FlagRolloutSpec(percent=60, step=20, interval="10m").steps()
    at20 = decide(steps, start(t0, 0), t0, None).state
    assert (at20.phase, at20.percent) == ("Progressing", 20)
    # Promote ends the pause now: the next decision is at 40%, its own interval starting then.
    t1 = t0 + timedelta(seconds=5)
    at40 = decide(steps, promote(steps, at20, t1), t1, None)
    assert (at40.state.percent, at40.wake_at) == (40, t1 + timedelta(minutes=10))
    # An inconclusive verdict pauses; resume goes on at the same step, its interval anew.
    paused = decide(steps, at40.state, t1, "Inconclusive").state
    assert paused.phase == "Paused"
    # Paused stays paused (with no verdict, or a later one) until resumed; a failure still reverts.
    assert decide(steps, paused, t1 + timedelta(days=1), None).state == paused
    assert decide(steps, paused, t1, "Failed").revert
    t2 = t1 + timedelta(hours=1)
    resumed = decide(steps, resume(paused, t2), t2, None)
    assert (resumed.state.phase, resumed.state.percent, resumed.wake_at) == (
        "Progressing",
        40,
        t2 + timedelta(minutes=10),
    )
    with pytest.raises(FlagRolloutError, match="only a paused rollout can be resumed"):
        resume(resumed.state, t2)
    # Promoted at the last step, it completes at its target.
    at60 = decide(steps, promote(steps, resumed.state, t2), t2, None).state
    done = decide(steps, promote(steps, at60, t2), t2, None).state
    assert (done.phase, done.percent) == ("Completed", 60)
    with pytest.raises(FlagRolloutError, match="over"):
        promote(steps, done, t2)


def rollout_state(plane: Plane) -> dict[str, Any]:
    doc: dict[str, Any] = plane.call("GET", "/v1/flags/new-greeting/rollout")
    return doc


def test_promote_skips_the_interval_step_by_step_to_completion(plane: Plane) -> None:
    plane.apply(FLAGS)
    # Ten minutes a step: any progress within the test is the promotion's doing.
    plane.cli("flags", "rollout", "new-greeting", "--percent", "60", "--step", "20", "--interval", "10m")
    wait_for(lambda: rollout_state(plane)["percent"] == 20 or None, what="the first step")

    refused = plane.cli("flags", "rollout", "new-greeting", "--resume", check=False)
    assert refused.returncode == 1
    assert "only a paused rollout can be resumed (it is Progressing)" in refused.stderr

    out = plane.cli("flags", "rollout", "new-greeting", "--promote").stdout
    assert "Progressing at 40%" in out, out
    assert plane.call("GET", "/v1/flags/new-greeting")["percent"] == 40
    plane.cli("flags", "rollout", "new-greeting", "--promote")
    assert plane.call("GET", "/v1/flags/new-greeting")["percent"] == 60
    done = plane.cli("flags", "rollout", "new-greeting", "--promote").stdout
    assert "Completed at 60%" in done, done

    over = plane.cli("flags", "rollout", "new-greeting", "--promote", check=False)
    assert over.returncode == 1 and "the rollout is over (Completed)" in over.stderr
    both = plane.cli("flags", "rollout", "new-greeting", "--promote", "--abort", check=False)
    assert both.returncode == 2
    steps = [h["command"] for h in plane.call("GET", "/v1/flag-history?flag=new-greeting")["items"]][1:]
    assert [c.rsplit("(step: ", 1)[1] for c in steps] == ["20%)", "40%)", "60%)"]


class Probe:
    """An HTTP endpoint answering {"value": V}; the test changes V."""

    def __init__(self) -> None:
        self.value = 0.5
        probe = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"value": probe.value}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def probe() -> Iterator[Probe]:
    p = Probe()
    try:
        yield p
    finally:
        p.close()


def template(port: int) -> str:
    # 0.5 is neither success nor failure: inconclusive, and one is enough to end the run.
    return f"""
apiVersion: rollwise.dev/v1alpha1
kind: AnalysisTemplate
metadata:
  name: probe
spec:
  metrics:
    - name: probe
      provider:
        webhook:
          url: http://127.0.0.1:{port}/value
          jsonPath: $.value
          retries: 0
      interval: 1s
      successCondition: result < 0.1
      failureCondition: result > 0.9
      inconclusiveLimit: 0
"""


def measured(state: dict[str, Any], phase: str) -> bool:
    metrics = (state.get("analysis") or {}).get("metrics") or []
    return any(m.get("phase") == phase for metric in metrics for m in metric.get("measurements") or [])


def test_an_inconclusive_pause_goes_on_with_promote_and_resume_also_after_a_restart(plane: Plane, probe: Probe) -> None:
    start_web(plane)
    plane.apply(template(probe.port), file="probe.yaml")
    plane.cli(
        "flags", "rollout", "new-greeting", "--percent", "40", "--step", "20", "--interval", "10m",
        "--analysis", "probe",
    )  # fmt: skip
    paused = wait_for(
        lambda: (s := rollout_state(plane))["phase"] == "Paused" and s, timeout=DEADLINE, what="an inconclusive pause"
    )
    assert paused["analysis"]["phase"] == "Inconclusive"
    assert "inconclusive" in plane.cli("flags", "rollout", "new-greeting").stdout

    # A restarted control plane keeps it paused (nothing goes on by itself) and can be told to go on.
    plane.kill()
    plane.start()
    assert rollout_state(plane)["phase"] == "Paused"

    # Promoted from the pause: the next step, and a fresh analysis (still inconclusive: paused again).
    plane.cli("flags", "rollout", "new-greeting", "--promote")
    again = wait_for(
        lambda: (s := rollout_state(plane))["phase"] == "Paused" and s["percent"] == 40 and s,
        timeout=DEADLINE,
        what="the promoted step to pause on a fresh inconclusive verdict",
    )
    assert again["analysis"]["phase"] == "Inconclusive"
    assert plane.call("GET", "/v1/flags/new-greeting")["percent"] == 40

    # The metric recovers; resume measures afresh and the rollout goes on at 40%.
    probe.value = 0.0
    out = plane.cli("flags", "rollout", "new-greeting", "--resume").stdout
    assert "Progressing at 40%" in out, out
    wait_for(
        lambda: (measured(s := rollout_state(plane), "Successful") and s["phase"] == "Progressing") or None,
        timeout=DEADLINE,
        what="a successful measurement after the resume",
    )
    assert rollout_state(plane)["analysis"]["phase"] == "Running"
    done = plane.cli("flags", "rollout", "new-greeting", "--promote").stdout
    assert "Completed at 40%" in done, done
    assert plane.call("GET", "/v1/flags/new-greeting")["percent"] == 40
