"""Feature flags on the local platform, end to end: a control plane process, the demo app's
replicas reading their flag through the OpenFeature SDK and flagd provider, the CLI changing the
flag, real HTTP through the rollout's proxy."""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.flags.sdk import USERS, Evaluator
from tests.local.plane import DEADLINE, Plane
from tests.procs import wait_for

FLAGS = """
apiVersion: rollwise.dev/v1alpha1
kind: FlagSet
metadata:
  name: web-flags
spec:
  flags:
    new-greeting:
      variants: {"on": true, "off": false}
      defaultVariant: "off"
"""

HEALTH = """
apiVersion: rollwise.dev/v1alpha1
kind: AnalysisTemplate
metadata:
  name: flag-health
spec:
  metrics:
    - name: error-rate
      provider:
        builtin:
          metric: error-rate
          window: 3s
      initialDelay: 1s
      interval: 1s
      successCondition: result <= 0.05
      failureLimit: 0
      consecutiveErrorLimit: 20
"""


def web(flagged_error_rate: float = 0.0) -> str:
    return f"""
apiVersion: rollwise.dev/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  replicas: 2
  process:
    command: [rollwise-demo]
    env:
      DEMO_VERSION: v1
      DEMO_FLAGGED_ERROR_RATE: "{flagged_error_rate}"
    readinessProbe: {{path: /healthz}}
  featureFlags:
    flagSet: web-flags
  strategy:
    rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}
"""


def greeting(host: str, port: int, user: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request("GET", f"/?user={user}")
        resp = conn.getresponse()
        body = json.loads(resp.read())
        return resp.status, str(body.get("greeting", body.get("error")))
    finally:
        conn.close()


def start_web(plane: Plane, flagged_error_rate: float = 0.0) -> tuple[str, int]:
    plane.apply(FLAGS + "---" + HEALTH + "---" + web(flagged_error_rate))
    plane.wait("web", lambda s: s["phase"] == "Healthy", "web to be healthy")
    return plane.endpoint("web")


def pids(plane: Plane) -> list[int]:
    return sorted(r["pid"] for r in plane.rollout("web")["replicas"])


def test_enable_changes_responses_without_a_restart_and_disable_reverts(plane: Plane) -> None:
    host, port = start_web(plane)
    users = USERS[:20]
    assert {greeting(host, port, u) for u in users} == {(200, "hello")}
    before = pids(plane)

    plane.cli("flags", "enable", "new-greeting")
    t0 = time.monotonic()
    wait_for(lambda: all(greeting(host, port, u) == (200, "hello, new world") for u in users), what="new greeting")
    print(f"enable seen by every replica after {time.monotonic() - t0:.2f}s")
    assert pids(plane) == before  # no redeploy: the same processes answer
    assert plane.summary("web")["phase"] == "Healthy"

    plane.cli("flags", "disable", "new-greeting")
    t0 = time.monotonic()
    wait_for(lambda: all(greeting(host, port, u) == (200, "hello") for u in users), what="old greeting")
    print(f"disable seen by every replica after {time.monotonic() - t0:.2f}s")
    assert pids(plane) == before

    listed = plane.cli("flags", "list").stdout
    assert "new-greeting" in listed and "DISABLED" in listed
    history = plane.call("GET", "/v1/flag-history?flag=new-greeting")["items"]
    assert [h["command"] for h in history] == [
        "apply test.yaml",
        "rollwise flags enable new-greeting",
        "rollwise flags disable new-greeting",
    ]
    assert history[0]["old"] is None and history[0]["new"]["defaultVariant"] == "off"
    assert history[1]["old"]["defaultVariant"] == "off" and history[1]["new"]["defaultVariant"] == "on"
    assert history[2]["new"]["state"] == "DISABLED"
    shown = plane.cli("flags", "history").stdout
    assert "off -> on" in shown and "on -> disabled" in shown


def test_progressive_rollout_serves_each_step_share_by_user_key(plane: Plane, tmp_path: Path) -> None:
    host, port = start_web(plane)
    plane.cli("flags", "rollout", "new-greeting", "--percent", "50", "--step", "10", "--interval", "2s")
    wait_for(
        lambda: plane.call("GET", "/v1/flags/new-greeting/rollout")["phase"] == "Completed",
        timeout=DEADLINE,
        what="the flag rollout to complete",
    )
    steps = [h for h in plane.call("GET", "/v1/flag-history?flag=new-greeting")["items"] if "(step:" in h["command"]]
    assert [h["command"].rsplit("step: ", 1)[1] for h in steps] == ["10%)", "20%)", "30%)", "40%)", "50%)"]
    # Each step's document, evaluated as an app does (SDK + flagd provider) for 4,000 user keys.
    for n, h in enumerate(steps):
        percent = (n + 1) * 10
        with Evaluator.of({"flags": {"new-greeting": h["new"]}}, tmp_path / f"step{n}.json") as ev:
            share = ev.share_on("new-greeting", USERS) * 100
        print(f"step {percent}%: {share:.2f}% of 4000 users")
        assert abs(share - percent) <= 3, (percent, share)
    # The replicas answer exactly what the SDK says for the file they read.
    file = Path(plane.call("GET", "/v1/flags/new-greeting")["file"])
    sample = USERS[:300]
    with Evaluator(file) as ev:
        expected = {u: ev.boolean("new-greeting", u) for u in sample}
    answers = {u: greeting(host, port, u) for u in sample}
    assert answers == {u: (200, "hello, new world" if on else "hello") for u, on in expected.items()}
    # `flags get --user` answers with flagd's own evaluator what that user gets.
    for user in sample[:5]:
        shown = json.loads(plane.cli("flags", "get", "new-greeting", "--user", user, "-o", "json").stdout)["user"]
        assert shown["variant"] == ("on" if expected[user] else "off"), (user, shown)


class UserLoad:
    """Requests from many users (a random user key each) through the proxy, counted by status."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self.stopping = threading.Event()
        self.statuses: Counter[int] = Counter()
        self.log: list[tuple[float, int]] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> UserLoad:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)

    def _run(self) -> None:
        rng = random.Random(7)
        conn = http.client.HTTPConnection(*self.address, timeout=30)
        while not self.stopping.is_set():
            try:
                conn.request("GET", f"/?user=u{rng.randrange(100_000)}")
                resp = conn.getresponse()
                resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(*self.address, timeout=30)
                continue
            with self.lock:
                self.statuses[resp.status] += 1
                self.log.append((time.monotonic(), resp.status))
            time.sleep(0.01)

    def since(self, t: float) -> Counter[int]:
        with self.lock:
            return Counter(s for at, s in self.log if at >= t)


def test_failed_analysis_reverts_the_flag(plane: Plane) -> None:
    # Every request on the flagged path fails: a bug behind the flag.
    host, port = start_web(plane, flagged_error_rate=1.0)
    with UserLoad(host, port) as load:
        wait_for(lambda: load.statuses[200] > 50, what="traffic")
        doc = plane.call(
            "POST",
            "/v1/flags/new-greeting/rollout",
            {"percent": 50, "step": 25, "interval": "60s", "analysis": ["flag-health"], "command": "test rollout"},
        )
        assert doc["analysis"]["rollout"] == "web"
        state: dict[str, Any] = wait_for(
            lambda: (d := plane.call("GET", "/v1/flags/new-greeting/rollout"))["phase"] != "Progressing" and d,
            timeout=DEADLINE,
            what="the analysis to end the flag rollout",
        )
        assert state["phase"] == "Reverted", state
        assert state["analysis"]["phase"] == "Failed"
        assert state["percent"] == 0
        flag = plane.call("GET", "/v1/flags/new-greeting")["definition"]
        assert flag == {"defaultVariant": "off", "variants": {"off": False, "on": True}}  # as applied
        history = plane.call("GET", "/v1/flag-history?flag=new-greeting")["items"]
        assert history[-1]["command"].startswith("test rollout (the analysis failed at 25%")
        assert history[-1]["new"] == history[0]["new"]  # as first applied
        assert load.statuses[500] > 0  # the flagged path was reached, and failed
        # Reverted: the replicas re-read the file, and no one is on the failing path any more.
        wait_for(lambda: all(greeting(host, port, u) == (200, "hello") for u in USERS[:200]), what="revert")
        settled = time.monotonic()
        wait_for(lambda: sum(load.since(settled).values()) >= 100, what="traffic after the revert")
        assert load.since(settled)[500] == 0


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_a_flag_exposed_as_env_changes_through_a_new_revision(plane: Plane) -> None:
    flags = FLAGS + "  env:\n    - {name: NEW_GREETING, flag: new-greeting}\n"
    plane.apply(flags + "---" + web())
    first = plane.wait("web", lambda s: s["phase"] == "Healthy", "web to be healthy")
    replicas = plane.rollout("web")["replicas"]
    assert {environ(r["pid"])["NEW_GREETING"] for r in replicas} == {"false"}
    path = plane.call("GET", "/v1/flags/new-greeting")["file"]
    assert {environ(r["pid"])["FLAGD_OFFLINE_FLAG_SOURCE_PATH"] for r in replicas} == {path}

    plane.cli("flags", "enable", "new-greeting")
    # Env is read at process start: the new value comes with a new revision, rolled out by the
    # rollout's strategy, and the old revision's processes keep the value they started with.
    second = plane.wait(
        "web",
        lambda s: s["phase"] == "Healthy" and s["stableRevision"] != first["stableRevision"],
        "a new revision with the new env",
    )
    current = [r for r in plane.rollout("web")["replicas"] if r["revision"] == second["stableRevision"]]
    assert current and {environ(r["pid"])["NEW_GREETING"] for r in current} == {"true"}
    history = plane.call("GET", "/v1/rollouts/web/history")["items"]
    assert len(history) == 2


def test_a_flag_rollout_survives_a_control_plane_restart_and_can_be_aborted(plane: Plane) -> None:
    host, port = start_web(plane)
    plane.cli("flags", "rollout", "new-greeting", "--percent", "40", "--step", "20", "--interval", "3s")
    wait_for(lambda: plane.call("GET", "/v1/flags/new-greeting/rollout")["percent"] == 20 or None, what="first step")
    plane.kill()
    plane.start()
    # The restarted control plane continues from the saved state: on to 40%.
    wait_for(
        lambda: plane.call("GET", "/v1/flags/new-greeting/rollout")["phase"] == "Completed" or None,
        timeout=DEADLINE,
        what="the resumed rollout to complete",
    )
    assert plane.call("GET", "/v1/flags/new-greeting")["percent"] == 40

    # A second rollout, aborted: the flag goes back to 40%.
    plane.cli("flags", "rollout", "new-greeting", "--percent", "80", "--step", "20", "--interval", "60s")
    wait_for(lambda: plane.call("GET", "/v1/flags/new-greeting")["percent"] == 60 or None, what="60%")
    refused = plane.cli("flags", "enable", "new-greeting", check=False)
    assert refused.returncode == 1 and "is being rolled out" in refused.stderr
    aborted = plane.cli("flags", "rollout", "new-greeting", "--abort")
    assert "Aborted" in aborted.stdout
    assert plane.call("GET", "/v1/flags/new-greeting")["percent"] == 40
    commands = [h["command"] for h in plane.call("GET", "/v1/flag-history?flag=new-greeting")["items"]]
    assert commands[-1].endswith("(aborted by the user: flag reverted)")
    assert greeting(host, port, "user-1")[0] == 200
