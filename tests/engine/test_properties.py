"""Property tests: at least 2,000 random event sequences per strategy (see properties.py). The
harness checks after every reconcile that weights are integers summing to 100, that no weight,
match or mirror points at a revision without a ready replica, and that an engine restarted from
the status alone plans the same; each test adds its strategy's own invariant."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rollwise.engine import Observed, Plan
from rollwise.engine.scaling import limits
from tests.engine.harness import LOCAL
from tests.engine.properties import Driver, Event, driver, events

EXAMPLES = settings(max_examples=2000, deadline=None)
DEADLINE = {"progressDeadlineSeconds": 120}
ANALYSIS = {"templates": [{"templateName": "check"}]}


def _stable_serves(plan: Plan, observed: Observed) -> bool:
    """When stable has no ready replica the route guard lets a revision already serving take its
    traffic; strategy-specific weight bounds hold only while stable can serve."""
    return plan.status.stable_revision is not None and observed.of(plan.status.stable_revision).ready > 0


# --- recreate -------------------------------------------------------------------------------------


def one_at_a_time(d: Driver, plan: Plan, observed: Observed) -> None:
    running = [r for r, c in plan.replicas.items() if c > 0]
    assert len(running) <= 1, plan.replicas
    for r in running:
        others = [o for o in observed.revisions if o != r and observed.of(o).present > 0]
        assert not others, f"{r} started while {others} still run"


@EXAMPLES
@given(events, st.booleans(), st.integers(1, 5), st.booleans())
def test_recreate_never_runs_two_revisions_at_once(
    sequence: list[Event], update: bool, replicas: int, abort: bool
) -> None:
    d = driver({"recreate": {}}, replicas=replicas, checks=[one_at_a_time], progressDeadlineAbort=abort, **DEADLINE)
    d.play(sequence, update=update)


# --- rolling update -------------------------------------------------------------------------------

AMOUNTS = st.sampled_from((0, 1, 2, "0%", "25%", "50%", "100%"))


@EXAMPLES
@given(events, st.booleans(), st.integers(1, 6), AMOUNTS, AMOUNTS, st.booleans(), st.sampled_from((0, 3)))
def test_rolling_stays_within_surge_and_unavailable(
    sequence: list[Event],
    update: bool,
    replicas: int,
    surge: int | str,
    unavailable: int | str,
    abort: bool,
    min_ready: int,
) -> None:
    def within(d: Driver, plan: Plan, observed: Observed) -> None:
        n = d.platform.rollout.spec.replicas
        s, u = limits(n, surge, unavailable)
        before = sum(min(o.available, o.desired) for o in observed.revisions.values())
        if sum(o.desired for o in observed.revisions.values()) <= n + s:
            assert sum(plan.replicas.values()) <= n + s, (plan.replicas, n, s)
        after = sum(min(observed.of(r).available, observed.of(r).desired, c) for r, c in plan.replicas.items())
        assert after >= min(n - u, before), (plan.replicas, observed, n, u)

    strategy = {"rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}
    d = driver(
        strategy, replicas=replicas, checks=[within], progressDeadlineAbort=abort, minReadySeconds=min_ready, **DEADLINE
    )
    d.play(sequence, update=update)


# --- blue-green -----------------------------------------------------------------------------------


def switch_is_earned(pre: bool) -> Any:
    def check(d: Driver, plan: Plan, observed: Observed) -> None:
        p = d.platform
        if not p.plans:
            return
        before = p.plans[-1]
        stable = before.status.stable_revision
        if stable is None or (d.commanded and d.commanded[-1][3] == len(p.plans) and d.commanded[-1][2] == "undo"):
            return  # a first revision has nothing to switch from; an undo fast-tracks a revision already up
        for rev, weight in plan.routes.weights.items():
            if weight == 0 or rev == stable or before.routes.weights.get(rev, 0) > 0:
                continue
            # A switch to a revision that was not serving: a preview with every replica ready...
            assert observed.of(rev).ready >= p.rollout.spec.replicas, (rev, observed)
            bg = plan.status.blue_green
            assert bg is not None and (bg.switched_at is not None or plan.status.stable_revision == rev)
            if not pre:
                continue
            # ...whose pre-promotion analysis (this attempt's) passed, or a human overrode it.
            prefix = f"web-{rev}-{plan.status.attempt}-pre"
            verdicts = [v for name, _, v in d.given if name.startswith(prefix)]
            humans = [verb for r, a, verb, _ in d.commanded if r == rev and a == plan.status.attempt]
            passed = "Successful" in verdicts[-1:] or "promoteFull" in humans
            accepted = bool({"Inconclusive", "Error"} & set(verdicts)) and "promote" in humans
            assert passed or accepted, (verdicts, humans)

    return check


@EXAMPLES
@given(
    events,
    st.booleans(),
    st.integers(1, 5),
    st.sampled_from((None, 1, 2)),
    st.booleans(),
    st.sampled_from((None, 0, 30)),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_blue_green_switches_only_to_a_ready_preview_that_passed_analysis(
    sequence: list[Event],
    update: bool,
    replicas: int,
    preview: int | None,
    auto: bool,
    auto_seconds: int | None,
    pre: bool,
    post: bool,
    abort: bool,
) -> None:
    options: dict[str, Any] = {"activeService": "web", "autoPromotionEnabled": auto, "scaleDownDelaySeconds": 30}
    if preview is not None:
        options["previewReplicaCount"] = preview
    if auto and auto_seconds is not None:
        options["autoPromotionSeconds"] = auto_seconds
    if pre:
        options["prePromotionAnalysis"] = ANALYSIS
    if post:
        options["postPromotionAnalysis"] = ANALYSIS
    d = driver(
        {"blueGreen": options},
        replicas=replicas,
        checks=[switch_is_earned(pre)],
        progressDeadlineAbort=abort,
        **DEADLINE,
    )
    d.play(sequence, update=update)


# --- canary ---------------------------------------------------------------------------------------

HEADER = {"headers": [{"name": "x-canary", "exact": "1"}]}
STEP_LISTS: list[list[dict[str, Any]]] = [
    [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {"duration": 30}}],
    [{"setWeight": 10}, {"analysis": ANALYSIS}, {"setWeight": 50}, {"analysis": ANALYSIS}, {"setWeight": 90}],
    [
        {"setCanaryScale": {"replicas": 1}},
        {"setHeaderRoute": {"name": "h", "match": [HEADER]}},
        {"setMirrorRoute": {"name": "m", "percent": 20}},
        {"pause": {"duration": 20}},
        {"setCanaryScale": {"matchTrafficWeight": True}},
        {"setWeight": 40},
        {"setHeaderRoute": {"name": "h"}},
        {"pause": {}},
    ],
    [],
]


def instant_abort_is_all_stable(d: Driver, plan: Plan, observed: Observed) -> None:
    s = plan.status
    if s.abort is None or s.abort.mode != "instant" or s.stable_revision is None:
        return
    if d.platform.rollout.spec.strategy.canary and d.platform.rollout.spec.strategy.canary.traffic_routing is None:
        return  # without a router an abort is a rolling rollback; traffic follows replicas
    if observed.of(s.stable_revision).ready > 0:
        assert dict(plan.routes.weights) == {s.stable_revision: 100}, plan.routes.weights
        assert plan.routes.matches == () and plan.routes.mirrors == ()


def canary_within_its_step(d: Driver, plan: Plan, observed: Observed) -> None:
    """The canary never carries more weight than the steps so far allowed."""
    s = plan.status
    if not s.current_revision or s.current_revision == s.stable_revision or s.stable_revision is None:
        return
    ca = d.platform.rollout.spec.strategy.canary
    assert ca is not None
    steps = ca.steps or []
    index = s.current_step_index if s.current_step_index is not None else len(steps)
    allowed = max([0] + [st.set_weight for st in steps[: index + 1] if st.set_weight is not None])
    weight = plan.routes.weights.get(s.current_revision, 0)
    # (When stable has no ready replica the guard lets a serving canary take its traffic.)
    if index < len(steps) and ca.traffic_routing is not None and _stable_serves(plan, observed):
        assert weight <= allowed or s.aborted, (weight, allowed, index)


@EXAMPLES
@given(
    events,
    st.booleans(),
    st.integers(1, 5),
    st.sampled_from(range(len(STEP_LISTS))),
    st.sampled_from(("instant", "gradual", "freeze")),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_canary_steps_aborts_and_restarts(
    sequence: list[Event],
    update: bool,
    replicas: int,
    steps: int,
    mode: str,
    background: bool,
    routed: bool,
    abort: bool,
) -> None:
    spec: dict[str, Any] = {"steps": STEP_LISTS[steps], "abort": {"mode": mode, "stepWeight": 25, "interval": "10s"}}
    if routed:
        spec["trafficRouting"] = LOCAL
    elif steps == 2:
        spec["steps"] = [s for s in STEP_LISTS[steps] if "setHeaderRoute" not in s and "setMirrorRoute" not in s]
    if background:
        spec["analysis"] = {**ANALYSIS, "startingStep": 1 if spec["steps"] else 0}
    d = driver(
        {"canary": spec},
        replicas=replicas,
        checks=[instant_abort_is_all_stable, canary_within_its_step],
        progressDeadlineAbort=abort,
        **DEADLINE,
    )
    d.play(sequence, update=update)


@EXAMPLES
@given(
    events, st.booleans(), st.integers(1, 6), st.sampled_from(("linear", "exponential")), st.booleans(), st.booleans()
)
def test_dynamic_canary(
    sequence: list[Event], update: bool, replicas: int, velocity: str, analysis: bool, abort: bool
) -> None:
    dynamic: dict[str, Any] = {
        "minStepWeight": 10,
        "maxStepWeight": 40,
        "startWeight": 5,
        "maxWeight": 100,
        "interval": "30s",
        "velocity": velocity,
    }
    if analysis:
        dynamic["analysis"] = ANALYSIS

    def bounded(d: Driver, plan: Plan, observed: Observed) -> None:
        s = plan.status
        if s.dynamic is not None and s.current_revision and not s.aborted and _stable_serves(plan, observed):
            assert plan.routes.weights.get(s.current_revision, 0) <= s.dynamic.weight

    d = driver(
        {"canary": {"trafficRouting": LOCAL, "dynamic": dynamic, "abort": {"mode": "instant"}}},
        replicas=replicas,
        checks=[instant_abort_is_all_stable, bounded],
        progressDeadlineAbort=abort,
        **DEADLINE,
    )
    d.play(sequence, update=update)


# --- shadow and A/B test --------------------------------------------------------------------------


def shadow_serves_nobody(d: Driver, plan: Plan, observed: Observed) -> None:
    s = plan.status
    if s.stage in ("starting", "mirroring") and s.current_revision:
        assert plan.routes.weights.get(s.current_revision, 0) == 0
        assert all(m.revision != s.current_revision for m in plan.routes.matches)


@EXAMPLES
@given(
    events, st.booleans(), st.integers(1, 5), st.booleans(), st.booleans(), st.sampled_from((10, 100)), st.booleans()
)
def test_shadow(
    sequence: list[Event], update: bool, replicas: int, analysis: bool, steps: bool, percent: int, compare: bool
) -> None:
    spec: dict[str, Any] = {"mirrorPercent": percent, "duration": "60s", "trafficRouting": LOCAL}
    if analysis:
        spec["analysis"] = ANALYSIS
    if compare:
        spec["compare"] = {"maxMismatchRate": 0.05}
    if steps:
        spec["promotion"] = {"steps": [{"setWeight": 30}, {"pause": {"duration": 20}}]}
    d = driver(
        {"shadow": spec}, replicas=replicas, checks=[shadow_serves_nobody, instant_abort_is_all_stable], **DEADLINE
    )
    d.play(sequence, update=update)


@EXAMPLES
@given(
    events,
    st.booleans(),
    st.integers(1, 5),
    st.booleans(),
    st.sampled_from((None, 0, 25)),
    st.booleans(),
    st.booleans(),
)
def test_ab_test(
    sequence: list[Event], update: bool, replicas: int, analysis: bool, weight: int | None, match: bool, judged: bool
) -> None:
    candidate: dict[str, Any] = {"name": "b", "role": "candidate"}
    if weight is not None:
        candidate["weight"] = weight
    if match or not weight:
        candidate["match"] = [{"cookies": [{"name": "beta", "exact": "1"}]}]
    spec: dict[str, Any] = {
        "variants": [{"name": "a", "role": "control"}, candidate],
        "duration": "2m",
        "trafficRouting": LOCAL,
    }
    if analysis:
        spec["analysis"] = ANALYSIS
    if judged:
        spec["winnerBy"] = {"metric": "latency-p99", "better": "lower"}

    def variants_only(d: Driver, plan: Plan, observed: Observed) -> None:
        s = plan.status
        if s.stage == "experiment" and s.current_revision and not s.aborted and _stable_serves(plan, observed):
            assert plan.routes.weights.get(s.current_revision, 0) <= (weight or 0)

    d = driver({"abTest": spec}, replicas=replicas, checks=[variants_only, instant_abort_is_all_stable], **DEADLINE)
    d.play(sequence, update=update)
