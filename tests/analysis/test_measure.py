"""A whole analysis run: the state machine driven by real providers and a clock the test moves."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler

from rollwise.analysis.measure import measure_due
from rollwise.analysis.providers import MeasureContext, measure_safely
from rollwise.analysis.providers.builtin import TrafficCounts
from rollwise.analysis.run import AnalysisRunState
from rollwise.spec.analysis import Measurement, Metric
from tests.analysis.helpers import T0, FakeClock, metric, run
from tests.analysis.servers import json_reply, serve


class Proxy:
    """Stands in for the local proxy's counters: the canary serves 1% errors."""

    def traffic(self, revision: str, window_seconds: float) -> TrafficCounts | None:
        return TrafficCounts(requests=1000, errors=10) if revision == "rev-b" else None


def test_run_to_success_with_webhook_job_and_builtin() -> None:
    calls: list[str] = []

    def handle(req: BaseHTTPRequestHandler, _body: bytes) -> tuple[int, dict[str, str], bytes]:
        calls.append(req.path)
        return json_reply(200, {"healthy": True})

    with serve(handle) as port:
        metrics = [
            metric(
                name="smoke",
                provider={
                    "webhook": {"url": f"http://127.0.0.1:{port}/check/{{{{args.rev}}}}", "jsonPath": "$.healthy"}
                },
                successCondition="result",
                interval="30s",
                count=3,
            ),
            metric(name="job", provider={"job": {"command": [sys.executable, "-c", "pass"]}}, initialDelay="1m"),
            metric(
                name="errors",
                provider={"builtin": {"metric": "error-rate"}},
                successCondition="result <= 0.02",
                interval="30s",
                count=2,
            ),
            metric(
                name="trial",
                provider={"builtin": {"metric": "latency-p99"}},
                successCondition="result < 100",
                dryRun=True,
            ),
        ]
        clock = FakeClock()
        ctx = MeasureContext(clock=clock, env={"PATH": "/usr/bin:/bin"}, traffic=Proxy(), revisions={"canary": "rev-b"})
        state = AnalysisRunState(metrics, started_at=clock())
        rounds: list[list[str]] = []
        while not state.done and len(rounds) < 20:
            measured = run(measure_due(state, {"rev": "rev-b"}, ctx))
            rounds.append(sorted(measured))
            wake = state.wake_at(clock())
            if wake is None:
                break
            clock.now = max(wake, clock.now)
    # t=0: everything without a delay; t=30s: the interval metrics; t=60s: the job's delay is over
    # and smoke takes its third measurement ("errors" finished after two).
    assert rounds == [["errors", "smoke", "trial"], ["errors", "smoke"], ["job", "smoke"]]
    assert state.phase == "Successful", state.message
    status = state.status()
    results = {r.name: r for r in status.metric_results or []}
    assert results["smoke"].count == 3 and calls == ["/check/rev-b"] * 3
    assert results["trial"].phase == "Inconclusive" and results["trial"].dry_run  # no histogram: no data
    assert "dry-run metric 'trial' was inconclusive (not decisive)" in (status.message or "")
    assert clock.now == T0.replace(minute=1)


class Exploding:
    async def measure(self, metric: Metric, args: Mapping[str, str], context: MeasureContext) -> Measurement:
        raise RuntimeError(f"bug while measuring {args['secret']}")


def test_a_provider_bug_becomes_an_error_measurement_without_secrets() -> None:
    from rollwise.analysis.args import Args

    args = Args({"secret": "hunter2"}, frozenset({"secret"}))
    m = run(measure_safely(metric(name="x"), args, MeasureContext(), {"webhook": Exploding()}))
    assert m.phase == "Error"
    assert m.message == "webhook provider failed: RuntimeError: bug while measuring ******"
