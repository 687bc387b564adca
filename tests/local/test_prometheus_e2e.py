"""A canary judged by a real Prometheus, end to end on the local platform.

Prometheus (Debian's package) scrapes the control plane's /metrics every second; the example
examples/canary-prometheus.yaml rolls out the demo app with an analysis step whose PromQL query is
the canary revision's error ratio. A healthy v2 is promoted; a v3 failing 10% of its requests is
aborted by the analysis, with all traffic back on v2. With Prometheus unreachable the canary
pauses: no evidence, no promotion."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.analysis.prometheus_process import run_prometheus
from tests.local.plane import Load, Plane
from tests.procs import free_port, wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "canary-prometheus.yaml"
NAME = "demo-prometheus"
TEMPLATE = "canary-error-ratio"
# The load stops by itself after this long, whatever happens to the test.
LOAD_LIMIT_S = 300.0
DEADLINE = 180.0


@pytest.fixture
def prometheus(plane: Plane, tmp_path: Path) -> Iterator[str]:
    target = plane.api.removeprefix("http://").rstrip("/")
    with run_prometheus(tmp_path / "prometheus", [target]) as address:
        yield address


def example(prometheus: str, *, version: str, error_rate: float = 0.0) -> str:
    """The example, pointed at the test's Prometheus, with the rate window and the measurement
    schedule scaled to its 1-second scrapes, and the demo's version and injected error rate."""
    docs = list(yaml.safe_load_all(EXAMPLE.read_text()))
    rollout = next(d for d in docs if d["kind"] == "Rollout")
    template = next(d for d in docs if d["kind"] == "AnalysisTemplate")
    assert rollout["metadata"]["name"] == NAME and template["metadata"]["name"] == TEMPLATE
    rollout["spec"]["process"]["env"].update(DEMO_VERSION=version, DEMO_ERROR_RATE=str(error_rate))
    rollout["spec"]["process"]["terminationGracePeriodSeconds"] = 5
    for step in rollout["spec"]["strategy"]["canary"]["steps"]:
        if "pause" in step:
            step["pause"] = {"duration": "2s"}
    args = {a["name"]: a for a in template["spec"]["args"]}
    args["prometheus"]["value"] = prometheus.removeprefix("http://")
    args["window"]["value"] = "8s"
    metric = template["spec"]["metrics"][0]
    metric.update(initialDelay="5s", interval="2s", count=4)
    return yaml.safe_dump_all(docs, sort_keys=False)


def bounded_load(plane: Plane) -> Load:
    """Three threads at up to 30 requests a second each, through the rollout's proxy on 127.0.0.1."""
    host, port = plane.endpoint(NAME)
    assert host == "127.0.0.1"
    load = Load(host, port, threads=3, rate=30.0)
    timer = threading.Timer(LOAD_LIMIT_S, load.stopping.set)
    timer.daemon = True
    timer.start()
    return load


def series(prometheus: str, promql: str) -> list[Any]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as reply:
        return list(json.load(reply)["data"]["result"])


def runs_of(plane: Plane, revision: str) -> list[dict[str, Any]]:
    return [r for r in plane.rollout(NAME)["analysis"] if r["revision"] == revision]


def test_prometheus_analysis_promotes_a_healthy_canary_and_aborts_a_failing_one(plane: Plane, prometheus: str) -> None:
    started = time.monotonic()
    plane.apply(example(prometheus, version="v1"), file=str(EXAMPLE))
    v1 = plane.wait(NAME, lambda s: s["phase"] == "Healthy", "v1 healthy", timeout=DEADLINE)["stableRevision"]

    with bounded_load(plane) as load:
        load_started = time.monotonic()
        # Prometheus has scraped v1's answers from the control plane: the pipeline the analysis
        # reads is in place before any canary.
        wait_for(
            lambda: series(prometheus, f'rollwise_proxy_requests_total{{rollout="{NAME}",revision="{v1}",code="2xx"}}'),
            timeout=60,
            what="v1's request counter in Prometheus",
        )

        # v2, healthy: the analysis step measures an error ratio of 0 and the canary is promoted.
        plane.apply(example(prometheus, version="v2"), file=str(EXAMPLE))
        v2 = plane.summary(NAME)["currentRevision"]
        assert v2 != v1
        plane.wait(
            NAME,
            lambda s: s["phase"] == "Healthy" and s["stableRevision"] == v2,
            "v2 promoted",
            timeout=DEADLINE,
        )
        (run,) = [r for r in runs_of(plane, v2) if r["phase"] != "Pending"]
        assert run["phase"] == "Successful", run
        (measured,) = run["metrics"]
        assert measured["name"] == "error-ratio" and measured["phase"] == "Successful", measured
        values = [float(m["value"]) for m in measured["measurements"] if m["phase"] == "Successful"]
        assert len(values) >= 4 and set(values) == {0.0}, measured
        mark = time.monotonic()
        wait_for(lambda: len(load.since(mark)) >= 50, timeout=60, what="traffic after the promotion")
        assert {v for _, _, v in load.since(mark)} == {"v2"}

        # v3 answers 500 to 10% of its requests: Prometheus shows it, the analysis fails, and the
        # rollout aborts with all traffic back on v2.
        plane.apply(example(prometheus, version="v3", error_rate=0.1), file=str(EXAMPLE))
        v3 = plane.summary(NAME)["currentRevision"]
        aborted = plane.wait(NAME, lambda s: s["phase"] == "Aborted", "v3 aborted", timeout=DEADLINE)
        assert aborted["stableRevision"] == v2
        assert aborted["weights"] == {v2: 100}
        assert "AnalysisFailed" in (aborted["message"] or ""), aborted
        failed = [r for r in runs_of(plane, v3) if r["phase"] == "Failed"]
        assert failed, runs_of(plane, v3)
        assert "error-ratio" in failed[0]["message"] and "result < 0.05" in failed[0]["message"], failed
        bad = [m for m in failed[0]["metrics"][0]["measurements"] if m["phase"] == "Failed"]
        assert bad and 0.05 < float(bad[-1]["value"]) < 0.2, failed  # about the injected 10%
        events = plane.call("GET", f"/v1/rollouts/{NAME}/events")["items"]
        reasons = [e["reason"] for e in events]
        assert "Aborted" in reasons, reasons
        verdicts = [e["message"] for e in events if e["reason"] == "AnalysisFailed"]
        assert any(failed[0]["run"] in m and "error-ratio" in m for m in verdicts), verdicts

        mark = time.monotonic()
        wait_for(lambda: len(load.since(mark)) >= 50, timeout=60, what="traffic after the abort")
        assert {(status, v) for _, status, v in load.since(mark)} == {(200, "v2")}
        rate = load.served() / (time.monotonic() - load_started)
    assert rate >= 50, f"the load averaged only {rate:.0f} requests/s"
    assert load.platform_failures() == [], load.platform_failures()
    assert load.statuses[500] > 0  # v3's errors reached users while it had weight, and were seen
    assert set(load.versions) == {"v1", "v2", "v3"}
    print(f"end to end in {time.monotonic() - started:.1f}s; {load.total} requests at {rate:.0f}/s; v3 {v3} aborted")


def test_prometheus_down_pauses_the_canary_without_promoting_it(plane: Plane) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    plane.apply(example(nowhere, version="v1"), file=str(EXAMPLE))
    v1 = plane.wait(NAME, lambda s: s["phase"] == "Healthy", "v1 healthy", timeout=DEADLINE)["stableRevision"]
    with bounded_load(plane) as load:
        plane.apply(example(nowhere, version="v2"), file=str(EXAMPLE))
        v2 = plane.summary(NAME)["currentRevision"]
        paused = plane.wait(NAME, lambda s: s["phase"] == "Paused", "v2 paused: no evidence", timeout=DEADLINE)
        assert paused["stableRevision"] == v1 and paused["weights"] == {v1: 80, v2: 20}, paused
        (run,) = runs_of(plane, v2)
        assert run["phase"] == "Error", run
        assert f"cannot reach Prometheus at {nowhere}" in run["message"], run
        assert "consecutiveErrorLimit" in run["message"], run
    assert load.platform_failures() == [], load.platform_failures()
