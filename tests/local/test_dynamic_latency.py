"""A dynamic canary is judged on latency as well as errors: the share of its requests slower than
stable's p95 from before the canary (a bound of the proxy's histogram), against stable's share."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rollwise.analysis.counters import ProxyTraffic
from rollwise.analysis.judgements import DynamicJudgement, p95_bound, slow_count
from rollwise.spec.strategies.canary import DynamicWeighting
from tests.local.test_units import Clock, env, request

CONFIG = DynamicWeighting.model_validate({"interval": "10s", "minSamples": 50})


def stats(revisions: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """`revisions`: (answers within 2.5 ms, answers within 10 ms but slower), all 2xx."""
    return {
        "revisions": {
            rev: {
                "requests": {"2xx": fast + slow, "3xx": 0, "4xx": 0, "5xx": 0},
                "latency": {
                    "buckets": [[0.0025, fast], [0.01, fast + slow], ["+Inf", fast + slow]],
                    "sum": 0.001 * fast + 0.008 * slow,
                },
            }
            for rev, (fast, slow) in revisions.items()
        },
        "mirrors": {},
    }


def test_the_threshold_is_a_bound_of_the_histogram() -> None:
    traffic = ProxyTraffic()
    traffic.record([stats({"stable": (960, 40)})], at=0.0)
    history = traffic.traffic("stable", 600)
    assert p95_bound(history) == 2.5
    assert history is not None and slow_count(history, 2.5) == 40
    traffic.record([stats({"few": (50, 0)})], at=0.0)
    assert p95_bound(traffic.traffic("few", 600)) is None  # too few requests to tell


def test_a_slow_canary_is_aborted_and_a_fast_one_is_not() -> None:
    traffic, clock = ProxyTraffic(), Clock()
    traffic.record([stats({"stable": (960, 40), "canary": (0, 0)})])
    slow = DynamicJudgement(request("dynamic", dynamic=CONFIG), env(traffic, clock), None)
    slow.begin()
    assert slow.latency_threshold_ms == 2.5
    traffic.record([stats({"stable": (1920, 80), "canary": (200, 200)})])  # half its answers slow, no errors
    clock.now += timedelta(seconds=2)
    verdict = slow.evaluate(clock.now)
    assert verdict is not None and verdict[0] == "Failed" and "slow" in verdict[1], verdict

    fast = DynamicJudgement(request("dynamic", dynamic=CONFIG), env(traffic, clock), None)
    fast.begin()
    traffic.record([stats({"stable": (2880, 120), "canary": (584, 216)})])  # 4% slow, as stable
    clock.now += timedelta(seconds=2)
    verdict = fast.evaluate(clock.now)
    assert verdict is not None and verdict[0] == "Running", verdict


def test_the_threshold_is_kept_across_a_restart_and_given_to_the_next_interval() -> None:
    traffic, clock = ProxyTraffic(), Clock()
    traffic.record([stats({"stable": (960, 40), "canary": (0, 0)})])
    first = DynamicJudgement(request("dynamic", dynamic=CONFIG), env(traffic, clock), None)
    first.begin()
    resumed = DynamicJudgement(request("dynamic", dynamic=CONFIG), env(traffic, clock), first.state())
    assert resumed.latency_threshold_ms == 2.5 and resumed.base == first.base
    # Stable got slower meanwhile; the next interval keeps the threshold it was given.
    traffic.record([stats({"stable": (960, 4000), "canary": (100, 4)})])
    later = DynamicJudgement(
        request("dynamic", dynamic=CONFIG), env(traffic, clock), None, evidence=first.evidence, latency_threshold_ms=2.5
    )
    later.begin()
    assert later.latency_threshold_ms == 2.5 and later.base is not None and later.base["canary"] == [104, 0, 4]
