"""The daemon's pure pieces: route translation, observation, proxy counters, judgements,
events and metrics, without processes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from rollwise.analysis.counters import ProxyTraffic
from rollwise.analysis.job_env import JobEnv
from rollwise.analysis.judgements import CompareJudgement, DynamicJudgement, WinnerJudgement
from rollwise.engine import MatchRoute, MirrorRoute, RouteTable
from rollwise.engine.plan import AnalysisRunRequest
from rollwise.platforms import transitions
from rollwise.platforms.local.daemon import metrics
from rollwise.platforms.local.daemon.observe import observe
from rollwise.platforms.local.daemon.routing import NOTHING, translate
from rollwise.platforms.local.supervisor import ReplicaView
from rollwise.spec.match import RouteMatch
from rollwise.spec.rollout import Rollout
from rollwise.spec.status import RolloutStatus
from rollwise.spec.strategies.abtest import StickyKey, WinnerBy
from rollwise.spec.strategies.canary import DynamicWeighting
from rollwise.spec.strategies.shadow import ShadowCompare

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def test_translate_keeps_the_engines_weights_matches_and_mirror() -> None:
    header = RouteMatch.model_validate({"headers": [{"name": "x-canary", "exact": "yes"}]})
    routes = RouteTable(
        weights={"a": 90, "b": 10},
        matches=(MatchRoute("testers", "b", (header,)),),
        mirrors=(MirrorRoute("m", "b", 20),),
    )
    t = translate(routes, {"a": [1001, 1002], "b": [2001]}, sticky_cookie="pick")
    assert t.main.weights == {"a": 90, "b": 10} and t.main.problems() == []
    assert t.main.upstreams["a"] == [("127.0.0.1", 1001), ("127.0.0.1", 1002)]
    assert t.main.routes[0].revision == "b" and t.main.routes[0].matches[0].headers[0].value == "yes"
    assert t.main.mirror is not None and (t.main.mirror.revision, t.main.mirror.percent) == ("b", 20)
    assert t.main.sticky_cookie == "pick"
    assert t.preview.weights == {"a": 90, "b": 10} and t.preview.mirror is None  # no preview: same as main
    assert t.notes == ()


def test_translate_moves_weight_off_a_revision_that_lost_its_replicas() -> None:
    routes = RouteTable(weights={"a": 70, "b": 30}, matches=(), mirrors=(MirrorRoute("m", "b", 50),))
    t = translate(routes, {"a": [1001]})
    assert t.main.weights == {"a": 100} and t.main.mirror is None and t.main.problems() == []
    assert "its weight goes to a" in t.notes[0]
    nothing = translate(routes, {})
    assert nothing.main == NOTHING and nothing.main.problems() == [] and "nothing can serve" in nothing.notes[0]


def test_translate_serves_the_preview_and_the_ab_cookie() -> None:
    routes = RouteTable(weights={"a": 100}, preview="b", sticky_by=StickyKey(cookie="variant"))
    t = translate(routes, {"a": [1001], "b": [2001]}, preview_revision="b")
    assert t.preview.weights == {"b": 100} and list(t.preview.upstreams) == ["b"]
    assert t.main.sticky_cookie == "variant"
    assert translate(routes, {"a": [1001]}, preview_revision="b").preview == NOTHING
    compare = ShadowCompare.model_validate({"headers": ["X-Version"], "ignoreBodyPaths": ["$.ts"]})
    shadow = RouteTable(weights={"a": 100}, mirrors=(MirrorRoute("shadow", "b", 100),))
    mirror = translate(shadow, {"a": [1], "b": [2]}, compare=compare).main.mirror
    assert mirror is not None and mirror.compare_headers == ("x-version",) and mirror.ignore_paths == ("$.ts",)


def view(revision: str, index: int, phase: str, ready_for: float | None = None) -> ReplicaView:
    since = None if ready_for is None else NOW - timedelta(seconds=ready_for)
    return ReplicaView("web", revision, index, 100 + index, 3000 + index, phase, 0, False, since)  # type: ignore[arg-type]


def test_observe_counts_available_replicas_and_when_the_next_one_will_be() -> None:
    views = {
        "a": [view("a", 0, "ready", 30), view("a", 1, "ready", 2), view("a", 2, "draining")],
        "b": [view("b", 0, "starting")],
    }
    seen = observe(views, {"a": 2}, min_ready_seconds=10, now=NOW)
    a, b = seen.observed.of("a"), seen.observed.of("b")
    assert (a.desired, a.ready, a.available, a.existing) == (2, 2, 1, 3)
    assert (b.desired, b.ready, b.existing) == (1, 0, 1)  # unknown desired: what runs
    assert seen.next_available_at == NOW + timedelta(seconds=8)


def stats(revisions: dict[str, tuple[int, int]], mirrors: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "revisions": {
            rev: {
                "requests": {"2xx": ok, "3xx": 0, "4xx": 0, "5xx": err},
                "latency": {"buckets": [[0.01, ok + err], ["+Inf", ok + err]], "sum": 0.001 * (ok + err)},
            }
            for rev, (ok, err) in revisions.items()
        },
        "mirrors": mirrors or {},
    }


def test_proxy_traffic_sums_listeners_and_answers_windows() -> None:
    t = ProxyTraffic()
    t.record([stats({"a": (100, 0)}), stats({"a": (10, 0), "b": (5, 5)})], at=100.0)
    t.record([stats({"a": (200, 0)}), stats({"a": (10, 0), "b": (15, 5)})], at=110.0)
    assert t.totals("b").requests == 20 and t.totals("b").errors == 5
    window = t.traffic("a", 10)
    assert window is not None and window.requests == 100 and window.latency_count == 100
    assert t.totals("nope").requests == 0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def env(traffic: ProxyTraffic, clock: Clock) -> JobEnv:
    async def refresh() -> None:
        return None

    return JobEnv(traffic=traffic, refresh=refresh, clock=clock)


def request(kind: str, **extra: Any) -> AnalysisRunRequest:
    return AnalysisRunRequest("run", kind, 0, "canary", "stable", (), (), **extra)  # type: ignore[arg-type]


def test_dynamic_judgement_aborts_on_harm_and_raises_on_health() -> None:
    config = DynamicWeighting.model_validate({"interval": "10s", "minSamples": 50})
    traffic, clock = ProxyTraffic(), Clock()
    traffic.record([stats({"canary": (0, 0), "stable": (0, 0)})])
    bad = DynamicJudgement(request("dynamic", dynamic=config), env(traffic, clock), None)
    bad.begin()
    traffic.record([stats({"canary": (140, 60), "stable": (1000, 0)})])
    clock.now += timedelta(seconds=2)
    verdict = bad.evaluate(clock.now)
    assert verdict is not None and verdict[0] == "Failed"  # mid-interval: harm shows, it ends now

    good = DynamicJudgement(request("dynamic", dynamic=config), env(traffic, clock), None)
    good.begin()
    traffic.record([stats({"canary": (500, 60), "stable": (2000, 0)})])
    clock.now += timedelta(seconds=2)
    assert good.evaluate(clock.now)[0] == "Running"  # type: ignore[index]
    clock.now += timedelta(seconds=10)
    phase, _, _ = good.evaluate(clock.now)  # type: ignore[misc]
    assert phase in ("Successful", "Inconclusive") and good.after is not None
    resumed = DynamicJudgement(request("dynamic", dynamic=config), env(traffic, clock), good.state())
    assert resumed.after == good.after and resumed.base == good.base


def test_compare_judgement_fails_early_and_passes_at_the_end() -> None:
    traffic, clock = ProxyTraffic(), Clock()
    mirror = {"sent": 0, "compared": 0, "identical": 0, "errors": {}, "diffs": {}}
    traffic.record([stats({}, {"canary": mirror})])
    compare = ShadowCompare.model_validate({"maxMismatchRate": 0.05})
    judge = CompareJudgement(request("shadowCompare", compare=compare), env(traffic, clock), None, duration_s=30)
    judge.begin()
    traffic.record([stats({}, {"canary": {**mirror, "sent": 100, "compared": 100, "identical": 99}})])
    assert judge.evaluate(clock.now)[0] == "Running"  # type: ignore[index]
    clock.now += timedelta(seconds=31)
    assert judge.evaluate(clock.now)[0] == "Successful"  # type: ignore[index]
    bad = CompareJudgement(request("shadowCompare", compare=compare), env(traffic, clock), None, duration_s=30)
    bad.begin()
    traffic.record([stats({}, {"canary": {**mirror, "sent": 200, "compared": 200, "identical": 139}})])
    phase, message, _ = bad.evaluate(clock.now)  # type: ignore[misc]
    assert phase == "Failed" and "60 of 100 compared replies differ" in message


def test_winner_judgement_waits_for_samples_then_names_the_winner() -> None:
    traffic, clock = ProxyTraffic(), Clock()
    winner_by = WinnerBy.model_validate({"metric": "success-rate", "better": "higher", "minSamples": 100})
    traffic.record([stats({"stable": (0, 0), "canary": (0, 0)})], at=0.0)
    judge = WinnerJudgement(request("abWinner", winner_by=winner_by), env(traffic, clock), None, since=NOW)
    traffic.record([stats({"stable": (50, 0), "canary": (50, 0)})], at=5.0)
    clock.now += timedelta(seconds=5)
    assert judge.evaluate(clock.now)[0] == "Running"  # type: ignore[index]
    traffic.record([stats({"stable": (800, 200), "canary": (990, 10)})], at=10.0)
    clock.now += timedelta(seconds=5)
    phase, message, value = judge.evaluate(clock.now)  # type: ignore[misc]
    assert (phase, value) == ("Successful", "candidate") and "candidate wins" in message


def test_changes_become_events() -> None:
    ro = Rollout.model_validate(
        {
            "metadata": {"name": "web"},
            "spec": {
                "process": {"command": ["x"]},
                "strategy": {"canary": {"steps": [{"setWeight": 10}, {"pause": {}}]}},
            },
        }
    )
    old = RolloutStatus.model_validate({"phase": "Healthy", "currentRevision": "a", "stableRevision": "a"})
    new = RolloutStatus.model_validate(
        {
            "phase": "Paused",
            "message": "waiting",
            "currentRevision": "b",
            "stableRevision": "a",
            "currentStepIndex": 1,
            "weights": [{"revision": "a", "weight": 90}, {"revision": "b", "weight": 10}],
        }
    )
    found = transitions.changes(ro, old, new)
    assert [(k, r) for k, r, _ in found] == [
        ("Normal", "NewRevision"),
        ("Normal", "Step"),
        ("Normal", "Weights"),
        ("Normal", "Paused"),
    ]
    assert found[1][2] == "step 2/2: pause (until promoted)" and found[2][2] == "a 90%, b 10%"
    assert transitions.changes(ro, new, new) == []


def test_a_dynamic_canary_interval_is_a_weights_event_not_a_step() -> None:
    ro = Rollout.model_validate(
        {
            "metadata": {"name": "web"},
            "spec": {
                "process": {"command": ["x"]},
                "strategy": {"canary": {"dynamic": {"interval": "5s"}}},
            },
        }
    )
    old = RolloutStatus.model_validate(
        {
            "phase": "Progressing",
            "currentRevision": "b",
            "stableRevision": "a",
            "currentStepIndex": 1,
            "weights": [{"revision": "a", "weight": 95}, {"revision": "b", "weight": 5}],
        }
    )
    new = old.model_copy(
        update={
            "current_step_index": 2,
            "weights": RolloutStatus.model_validate(
                {"weights": [{"revision": "a", "weight": 90}, {"revision": "b", "weight": 10}]}
            ).weights,
        }
    )
    found = transitions.changes(ro, old, new)
    assert [(k, r, m) for k, r, m in found] == [("Normal", "Weights", "a 90%, b 10%")]


def test_proxy_metrics_are_merged_per_family_with_rollout_labels() -> None:
    text = (
        "# HELP rollwise_proxy_requests_total Answers.\n# TYPE rollwise_proxy_requests_total counter\n"
        'rollwise_proxy_requests_total{revision="a",code="2xx"} 3\n'
        "# HELP rollwise_proxy_client_connections Open.\n# TYPE rollwise_proxy_client_connections gauge\n"
        "rollwise_proxy_client_connections 2\n"
    )
    lines = metrics.merge_proxy_metrics([("web", "main", text), ("web", "preview", text)])
    assert lines.count("# TYPE rollwise_proxy_requests_total counter") == 1
    assert 'rollwise_proxy_requests_total{rollout="web",listener="preview",revision="a",code="2xx"} 3' in lines
    assert 'rollwise_proxy_client_connections{rollout="web",listener="main"} 2' in lines
    families = [line.split()[2] for line in lines if line.startswith("# TYPE")]
    assert families == ["rollwise_proxy_requests_total", "rollwise_proxy_client_connections"]


def test_judgement_run_loop_ends_when_terminated() -> None:
    traffic, clock = ProxyTraffic(), Clock()
    traffic.record([stats({"stable": (0, 0), "canary": (0, 0)})])
    winner_by = WinnerBy.model_validate({"metric": "success-rate", "better": "higher"})
    judge = WinnerJudgement(request("abWinner", winner_by=winner_by), env(traffic, clock), None)
    reports: list[int] = []

    async def go() -> None:
        task = asyncio.create_task(judge.run(lambda out: reports.append(len(out))))
        await asyncio.sleep(0.05)
        judge.terminate("not needed")
        await asyncio.wait_for(task, timeout=5)

    asyncio.run(go())
    assert judge.phase == "Successful" and judge.message == "terminated: not needed" and reports
