"""Every Kubernetes example with a router, end to end on the routing side: the engine rolls the
example's Rollout out on an idealised platform (every replica ready, every analysis passes, a
human promotes when asked), and each route table it plans is written by the example's router into
the example's own VirtualService, HTTPRoute or Ingress, read back and verified."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import AsyncClient
from lightkube.resources.networking_v1 import Ingress

from rollwise.engine.plan import Command, Observed, RevisionObserved, RouteTable, Verdict
from rollwise.engine.reconcile import reconcile
from rollwise.platforms.kubernetes.routers import Backends, router_for, verify_routes
from rollwise.platforms.kubernetes.routers.gateway_api import HTTPRoute
from rollwise.platforms.kubernetes.routers.istio import DestinationRule, VirtualService
from rollwise.spec.rollout import Rollout
from rollwise.spec.status import RevisionRecord, RolloutStatus
from rollwise.testing.kubeapi import ApiServer
from tests.kube.router_checks import check_all_custom, check_builtin, sent

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "kubernetes"
PREVIOUS = "previous"
KINDS = {
    "VirtualService": VirtualService,
    "DestinationRule": DestinationRule,
    "HTTPRoute": HTTPRoute,
    "Ingress": Ingress,
}


def route_tables(rollout: Rollout) -> list[tuple[RouteTable, Backends]]:
    """Each distinct route table of a rollout of the spec's revision over a running one, with the
    Services the controller would have pointed at the revisions then."""
    holder = rollout.spec.strategy.canary or rollout.spec.strategy.shadow or rollout.spec.strategy.ab_test
    assert holder is not None and holder.stable_service and holder.canary_service
    n = rollout.spec.replicas
    ready = {PREVIOUS: n}
    status = RolloutStatus(
        phase="Healthy",
        current_revision=PREVIOUS,
        stable_revision=PREVIOUS,
        spec_revision=PREVIOUS,
        history=[RevisionRecord(revision=PREVIOUS, number=1)],
    )
    current = rollout.model_copy(update={"status": status})
    now = datetime(2000, 1, 1, tzinfo=UTC)
    verdicts: dict[str, Verdict] = {}
    commands: list[Command] = []
    out: list[tuple[RouteTable, Backends]] = []
    for _ in range(500):
        observed = Observed(
            revisions={r: RevisionObserved(desired=c, ready=c, available=c, existing=c) for r, c in ready.items()}
        )
        plan = reconcile(current, observed, now, verdicts, commands)
        commands = []
        current = current.model_copy(update={"status": plan.status})
        s = plan.status
        services = {s.stable_revision: holder.stable_service} if s.stable_revision else {}
        roles: dict[str, Any] = {s.stable_revision: "stable"} if s.stable_revision else {}
        if s.current_revision and s.current_revision != s.stable_revision:
            services[s.current_revision] = holder.canary_service
            roles[s.current_revision] = "canary"
        entry = (plan.routes, Backends(services=services, roles=roles))
        if not out or out[-1] != entry:
            out.append(entry)
        if s.phase == "Healthy" and s.stable_revision == plan.revision:
            return out
        assert s.phase not in ("Aborted", "Degraded"), s.message
        changed = any(ready.get(r, 0) != c for r, c in plan.replicas.items())
        ready.update(plan.replicas)
        for run in plan.analysis:
            verdicts[run.name] = "Successful"
        gated = any(p.reason in ("CanaryPauseStep", "InconclusiveAnalysis") for p in s.pause_conditions or [])
        if gated and plan.requeue_after is None:
            commands = [Command("promote")]
            continue
        if changed or plan.analysis:
            continue
        assert plan.requeue_after is not None, "the rollout stopped before it finished"
        now += timedelta(seconds=plan.requeue_after)
    raise AssertionError("the rollout did not finish in 500 reconciles")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "example",
    ["canary-istio.yaml", "shadow-istio.yaml", "ab-test-istio.yaml", "canary-gateway-api.yaml", "canary-nginx.yaml"],
)
async def test_example_rollout_routes_verify(
    example: str, api: ApiServer, client: AsyncClient, shared_crds: Path
) -> None:
    docs = [d for d in yaml.safe_load_all((EXAMPLES / example).read_text()) if d]
    rollout = Rollout.model_validate(next(d for d in docs if d["kind"] == "Rollout"))
    for doc in docs:
        if doc["kind"] in KINDS:
            await client.create(KINDS[doc["kind"]].from_dict(doc), namespace="default")
    router = router_for(rollout, client, "rollwise")
    assert router is not None

    tables = route_tables(rollout)
    for table, backends in tables:
        await router.apply(table, backends)
        problems = verify_routes(table, backends, await router.observe(backends))
        assert problems == [], (table, problems)
    assert any(0 < w < 100 for t, _ in tables for w in t.weights.values()) or any(
        t.matches or t.mirrors for t, _ in tables
    )
    final = await router.observe(tables[-1][1])
    assert final.matches == () and final.mirrors == ()
    for plural in ("virtualservices", "httproutes"):
        check_all_custom(api, shared_crds, plural)
    for body in sent(api, "ingresses"):
        check_builtin(body)
