"""The controller with the Gateway API and NGINX routers, strategy by strategy: canary abort in each
mode (Istio with DestinationRule subsets too), canary undo, A/B by header and by cookie, Gateway
API shadow and matched mirror. After each step the exact routing objects (every HTTPRoute rule; the
user's Ingress and the canary Ingress), the Service selectors and the ReplicaSets with their
replica counts. The user's own HTTPRoute rules, filters and timeouts, and the user's Ingress, stay
as written. Blue-green uses no router (it switches Service selectors; test_controller.py covers it).

Each router is a `Router` below: how its objects are set up, read back whole, and what they must
read for a given route table; the scenarios run once per router."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from lightkube import AsyncClient
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.networking_v1 import Ingress
from lightkube.types import PatchType

from rollwise.lint import lint_paths
from rollwise.platforms.kubernetes.names import REVISION_LABEL, Rollout
from rollwise.testing.kubeapi import ApiServer
from tests.kube.controller_harness import (
    NS,
    ControllerThread,
    ReadinessDriver,
    Trail,
    command,
    controller_running,
    events,
    objects,
    replicasets,
    selector,
    status,
    weights,
)
from tests.kube.helpers import HTTPRoute, wait_until
from tests.kube.router_checks import check_all_custom, check_builtin
from tests.kube.test_controller import create, healthy, revision_of, set_image, spec, step

pytestmark = pytest.mark.asyncio

STABLE, CANARY = "web-stable", "web-canary"
GATEWAY = "gateway.networking.k8s.io/v1"
ISTIO = "networking.istio.io/v1"
VirtualService = create_namespaced_resource("networking.istio.io", "v1", "VirtualService", "virtualservices")
DestinationRule = create_namespaced_resource("networking.istio.io", "v1", "DestinationRule", "destinationrules")
NGINX = "nginx.ingress.kubernetes.io"
# The machine is shared and slow at times: a generous deadline, never a sleep.
DEADLINE = 60


async def until(api: ApiServer, predicate: Callable[[], Any]) -> Any:
    return await wait_until(api, predicate, timeout=DEADLINE)


# --- what a route table asks of the router, in test terms --------------------------------------------


@dataclass(frozen=True)
class Rule:
    """Match route `name`: requests whose header (or cookie) `key` equals `value` go to `service`."""

    name: str
    service: str
    kind: str  # "header" | "cookie"
    key: str
    value: str

    def spec_match(self) -> dict[str, Any]:
        key = "headers" if self.kind == "header" else "cookies"
        return {key: [{"name": self.key, "exact": self.value}]}


@dataclass(frozen=True)
class Mirror:
    """A copy of `percent`% of the requests (those `match` selects, or all) sent to `service`."""

    name: str
    service: str
    percent: int
    match: Rule | None = None


@dataclass(frozen=True)
class Table:
    """What the routing objects must say: the weighted split (Service -> weight, 0s left out), the
    match routes in the order the controller ranks them, and the mirrors."""

    split: tuple[tuple[str, int], ...]
    rules: tuple[Rule, ...] = ()
    mirrors: tuple[Mirror, ...] = ()


STABLE_ONLY = Table(((STABLE, 100),))


def split(canary: int, *rules: Rule) -> Table:
    return Table(((STABLE, 100 - canary), (CANARY, canary)), rules)


# --- the routers -----------------------------------------------------------------------------------------


class Router:
    key: str
    routing: dict[str, Any]
    services = True  # the revisions are reached through the stable and canary Services
    # After an abort the canary Service selects the stable revision again; a subset instead keeps
    # the aborted revision's label (it has no pods and nothing is routed to it).
    canary_back_to_stable = True

    def selected(self, api: ApiServer) -> tuple[str | None, str | None]:
        """The revisions the stable and the canary backend select."""
        return selector(api, STABLE), selector(api, CANARY)

    async def install(self, api: ApiServer, client: AsyncClient) -> None:
        raise NotImplementedError

    def read(self, api: ApiServer) -> Any:
        """The routing objects as stored, whole (what a user would see with kubectl get -o yaml)."""
        raise NotImplementedError

    def expected(self, table: Table) -> Any:
        """What `read` must return when the objects route as `table` says."""
        raise NotImplementedError

    def routes(self, api: ApiServer, table: Table) -> bool:
        return bool(self.read(api) == self.expected(table))

    def check_written(self, api: ApiServer, shared: Path) -> None:
        """Every object the controller wrote is valid against its schema."""
        raise NotImplementedError


class GatewayAPI(Router):
    """An HTTPRoute with a rule of the user's own (to an admin Service) before the managed rule,
    whose filter and timeouts the copies keep."""

    key = "gatewayAPI"
    routing = {"gatewayAPI": {"httpRoute": "web"}}
    ADMIN = {
        "matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
        "filters": [
            {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-admin", "value": "1"}]}}
        ],
        "backendRefs": [{"name": "admin", "port": 8081}],
    }
    MANAGED = {
        # Two matches of the user's own, one with a header: each copy has both, with its condition added.
        "matches": [
            {"path": {"type": "PathPrefix", "value": "/"}},
            {"path": {"type": "PathPrefix", "value": "/api"}, "headers": [{"name": "x-tenant", "value": "blue"}]},
        ],
        "filters": [
            {"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "x-via", "value": "gw"}]}}
        ],
        "timeouts": {"request": "10s"},
        "backendRefs": [{"name": STABLE, "port": 80, "weight": 100}, {"name": CANARY, "port": 80, "weight": 0}],
    }

    def __init__(self) -> None:
        self.initial: dict[str, Any] = {}

    async def install(self, api: ApiServer, client: AsyncClient) -> None:
        body = {
            "apiVersion": GATEWAY,
            "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": NS, "labels": {"team": "web"}},
            "spec": {
                "parentRefs": [{"name": "gw"}],
                "hostnames": ["web.example.com"],
                "rules": [self.ADMIN, self.MANAGED],
            },
        }
        await client.create(HTTPRoute.from_dict(copy.deepcopy(body)))
        stored = api.get_object(GATEWAY, "HTTPRoute", NS, "web")
        assert stored is not None
        # The user's rules as the server stored them (with the schema's defaults filled in).
        self.initial = copy.deepcopy(stored["spec"])

    def read(self, api: ApiServer) -> Any:
        route = api.get_object(GATEWAY, "HTTPRoute", NS, "web")
        assert route is not None
        assert route["metadata"]["labels"] == {"team": "web"}
        return route["spec"]

    def expected(self, table: Table) -> Any:
        admin, managed = copy.deepcopy(self.initial["rules"])
        base_matches = managed["matches"]
        user_filters = managed["filters"]
        managed["backendRefs"] = [_ref(svc, w) for svc, w in table.split if w > 0]
        managed["filters"] = [*user_filters, *(_mirror_filter(m) for m in table.mirrors if m.match is None)]

        def copy_for(name: str, rule: Rule) -> dict[str, Any]:
            if rule.kind == "header":
                cond = {"type": "Exact", "name": rule.key, "value": rule.value}
            else:
                pattern = rf"^(?:.*;\s*)?{rule.key}={rule.value}(?:;.*)?$"
                cond = {"type": "RegularExpression", "name": "Cookie", "value": pattern}
            c = copy.deepcopy(managed)
            c["name"] = f"rollwise-{name}"
            c["matches"] = [{**m, "headers": [*m.get("headers", []), cond]} for m in base_matches]
            c["filters"] = user_filters
            return c

        copies = []
        for rule in table.rules:
            c = copy_for(rule.name, rule)
            c["backendRefs"] = [_ref(rule.service, 100)]
            copies.append(c)
        for mirror in table.mirrors:
            if mirror.match is not None:
                # A matched mirror: the split as on the managed rule, plus the copy.
                c = copy_for(mirror.name, mirror.match)
                c["filters"] = [*user_filters, _mirror_filter(mirror)]
                copies.append(c)
        return {**self.initial, "rules": [admin, *copies, managed]}

    def check_written(self, api: ApiServer, shared: Path) -> None:
        assert check_all_custom(api, shared, "httproutes") >= 2


def _mirror_filter(mirror: Mirror) -> dict[str, Any]:
    return {
        "type": "RequestMirror",
        "requestMirror": {"backendRef": _ref(mirror.service, None), "percent": mirror.percent},
    }


def _ref(service: str, weight: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {"group": "", "kind": "Service", "name": service, "port": 80}
    if weight is not None:
        out["weight"] = weight
    return out


class NginxIngress(Router):
    """The user's Ingress (two hosts; one path to another Service, which the canary Ingress leaves
    out) and the canary Ingress the controller writes beside it."""

    key = "nginx"
    routing = {"nginx": {"ingress": "web"}}
    USER = {
        "ingressClassName": "nginx",
        "rules": [
            {
                "host": "web.example.com",
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": STABLE, "port": {"number": 80}}},
                        },
                        {
                            "path": "/admin",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "admin", "port": {"number": 8081}}},
                        },
                    ]
                },
            }
        ],
    }
    USER_ANNOTATIONS = {f"{NGINX}/proxy-body-size": "8m"}

    async def install(self, api: ApiServer, client: AsyncClient) -> None:
        body = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "web", "namespace": NS, "annotations": self.USER_ANNOTATIONS},
            "spec": self.USER,
        }
        await client.create(Ingress.from_dict(copy.deepcopy(body)))

    def read(self, api: ApiServer) -> Any:
        out = {}
        for ing in objects(api, "networking.k8s.io/v1", "Ingress"):
            meta = ing["metadata"]
            owners = [(o["kind"], o["name"], o.get("controller")) for o in meta.get("ownerReferences") or []]
            out[meta["name"]] = {
                "labels": meta.get("labels"),
                "annotations": meta.get("annotations"),
                "owners": owners,
                "spec": ing["spec"],
            }
        return out

    def expected(self, table: Table) -> Any:
        user = {"labels": None, "annotations": self.USER_ANNOTATIONS, "owners": [], "spec": self.USER}
        out: dict[str, Any] = {"web": user}
        assert not table.mirrors, "the nginx router cannot mirror"
        assert len(table.rules) <= 1, "the nginx router holds one match route"
        canary = dict(table.split).get(CANARY, 0)
        if canary == 0 and not table.rules:
            return out  # nothing goes to the canary: no canary Ingress at all
        annotations = {f"{NGINX}/canary": "true", f"{NGINX}/canary-weight": str(canary)}
        for rule in table.rules:
            assert rule.service == CANARY, "the nginx router sends matched requests to the canary only"
            if rule.kind == "header":
                annotations[f"{NGINX}/canary-by-header"] = rule.key
                annotations[f"{NGINX}/canary-by-header-value"] = rule.value
            else:
                assert rule.value == "always"
                annotations[f"{NGINX}/canary-by-cookie"] = rule.key
        path = {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": CANARY, "port": {"number": 80}}}}
        out["web-canary"] = {
            "labels": {"rollwise.dev/rollout": "web"},
            "annotations": annotations,
            "owners": [("Rollout", "web", True)],
            "spec": {"ingressClassName": "nginx", "rules": [{"host": "web.example.com", "http": {"paths": [path]}}]},
        }
        return out

    def check_written(self, api: ApiServer, shared: Path) -> None:
        for obj in objects(api, "networking.k8s.io/v1", "Ingress"):
            check_builtin({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", **obj})


class IstioSubsets(Router):
    """Istio with a DestinationRule and no stable/canary Services: the subsets' revision labels pick
    the revisions, the VirtualService splits between the subsets (the table's Services stand for
    the subsets of the same role). A route of the user's own comes first and stays."""

    key = "istio"
    routing = {
        "istio": {
            "virtualService": {"name": "web", "routes": ["primary"]},
            "destinationRule": {"name": "web", "stableSubsetName": "stable", "canarySubsetName": "canary"},
        }
    }
    services = False
    canary_back_to_stable = False
    SUBSET = {STABLE: "stable", CANARY: "canary"}
    PRIMARY = {
        "name": "primary",
        "timeout": "5s",
        "route": [{"destination": {"host": "web", "subset": "stable"}, "weight": 100}],
    }
    OTHER = {"name": "admin", "match": [{"uri": {"prefix": "/admin"}}], "route": [{"destination": {"host": "admin"}}]}
    RULE = {
        "host": "web",
        "trafficPolicy": {"loadBalancer": {"simple": "LEAST_REQUEST"}},
        "subsets": [{"name": "stable", "labels": {"app": "web"}}, {"name": "canary", "labels": {"app": "web"}}],
    }

    def __init__(self) -> None:
        self.initial: dict[str, Any] = {}

    async def install(self, api: ApiServer, client: AsyncClient) -> None:
        meta = {"name": "web", "namespace": NS}
        rule = {"apiVersion": ISTIO, "kind": "DestinationRule", "metadata": meta, "spec": self.RULE}
        await client.create(DestinationRule.from_dict(copy.deepcopy(rule)))
        spec = {"hosts": ["web"], "http": [self.OTHER, self.PRIMARY]}
        vs = {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": meta, "spec": spec}
        await client.create(VirtualService.from_dict(copy.deepcopy(vs)))
        stored = api.get_object(ISTIO, "VirtualService", NS, "web")
        assert stored is not None
        self.initial = copy.deepcopy(stored["spec"])

    def read(self, api: ApiServer) -> Any:
        vs = api.get_object(ISTIO, "VirtualService", NS, "web")
        assert vs is not None
        return vs["spec"]

    def selected(self, api: ApiServer) -> tuple[str | None, str | None]:
        dr = api.get_object(ISTIO, "DestinationRule", NS, "web")
        assert dr is not None
        assert dr["spec"]["trafficPolicy"] == self.RULE["trafficPolicy"]  # the user's, kept
        revisions = {}
        for subset in dr["spec"]["subsets"]:
            labels = dict(subset["labels"])
            assert labels.pop("app") == "web"
            revisions[subset["name"]] = labels.pop(REVISION_LABEL, None)
            assert not labels, labels
        return revisions["stable"], revisions["canary"]

    def expected(self, table: Table) -> Any:
        assert not table.mirrors
        other, primary = copy.deepcopy(self.initial["http"])

        def to(service: str, weight: int) -> dict[str, Any]:
            return {"destination": {"host": "web", "subset": self.SUBSET[service]}, "weight": weight}

        primary["route"] = [to(svc, w) for svc, w in table.split if w > 0]
        copies = []
        for rule in table.rules:
            assert rule.kind == "header"
            c = copy.deepcopy(primary)
            c["name"] = f"rollwise-{rule.name}"
            c["match"] = [{"headers": {rule.key: {"exact": rule.value}}}]
            c["route"] = [{"destination": to(rule.service, 100)["destination"]}]  # one destination: no weight
            copies.append(c)
        return {**self.initial, "http": [other, *copies, primary]}

    def check_written(self, api: ApiServer, shared: Path) -> None:
        assert check_all_custom(api, shared, "virtualservices") >= 2
        assert check_all_custom(api, shared, "destinationrules") >= 2


ROUTERS = [pytest.param(GatewayAPI, id="gatewayAPI"), pytest.param(NginxIngress, id="nginx")]


@pytest_asyncio.fixture
async def running(
    api: ApiServer, client: AsyncClient, shared_crds: Path
) -> AsyncIterator[tuple[ControllerThread, ReadinessDriver]]:
    async with controller_running(api, client, (STABLE, CANARY)) as running:
        yield running


def no_router_failures(api: ApiServer) -> None:
    failed = [e for e in events(api, "web") if e[1] == "RouterFailed"]
    assert not failed, failed


def canary(steps: list[dict[str, Any]], router: Router) -> dict[str, Any]:
    services = {"stableService": STABLE, "canaryService": CANARY} if router.services else {}
    return {"canary": {**services, "trafficRouting": router.routing, "steps": steps}}


async def start(
    api: ApiServer, client: AsyncClient, router: Router, strategy: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """The router's objects, then the Rollout at its first revision, healthy and routing to stable."""
    await router.install(api, client)
    doc = spec(strategy)
    v1 = revision_of(doc)
    await create(client, "web", doc)
    await until(api, lambda: healthy(api, "web", v1))
    await until(api, lambda: router.routes(api, STABLE_ONLY))
    assert replicasets(api, "web") == {v1: 4}
    assert router.selected(api) == (v1, v1)
    return doc, v1


# --- canary ------------------------------------------------------------------------------------------------

TESTERS = Rule("testers", CANARY, "header", "x-canary", "always")


@pytest.mark.parametrize("mode", ["instant", "gradual", "freeze"])
@pytest.mark.parametrize("router_type", [*ROUTERS, pytest.param(IstioSubsets, id="istio-subsets")])
async def test_canary_abort_takes_traffic_back(
    api: ApiServer,
    client: AsyncClient,
    running: tuple[ControllerThread, ReadinessDriver],
    shared_crds: Path,
    router_type: type[Router],
    mode: str,
) -> None:
    """instant: every request back on stable in one write; gradual: the header route goes and the
    weight steps down by stepWeight; freeze: routes held until a second abort rolls back."""
    router = router_type()
    steps = [
        {"setHeaderRoute": {"name": "testers", "match": [TESTERS.spec_match()]}},
        {"setWeight": 50},
        {"pause": {}},
    ]
    strategy = canary(steps, router)
    strategy["canary"]["abort"] = {"mode": mode, "stepWeight": 20, "interval": "1s"}
    doc, v1 = await start(api, client, router, strategy)
    doc2 = await set_image(client, "web", doc, "example/app:2.0")
    v2 = revision_of(doc2)

    await until(api, lambda: step(api, "web") == 2 and weights(api, "web") == {v1: 50, v2: 50})
    await until(api, lambda: router.routes(api, split(50, TESTERS)))
    assert router.read(api) == router.expected(split(50, TESTERS))
    assert replicasets(api, "web") == {v1: 4, v2: 2}
    assert router.selected(api) == (v1, v2)

    with Trail(api, lambda: (router.read(api), router.selected(api))) as trail:
        await command(client, "web", "abort")
        await until(api, lambda: status(api, "web").get("phase") == "Aborted")
        if mode == "freeze":
            await until(api, lambda: "frozen" in status(api, "web").get("message", ""))
            assert router.read(api) == router.expected(split(50, TESTERS))
            assert replicasets(api, "web") == {v1: 4, v2: 2}
            assert router.selected(api) == (v1, v2)
            await command(client, "web", "abort")  # again: roll back now
        await until(api, lambda: replicasets(api, "web") == {v1: 4, v2: 0})
        after = (v1, v1 if router.canary_back_to_stable else v2)
        await until(api, lambda: router.routes(api, STABLE_ONLY) and router.selected(api) == after)
    stepped = [split(30), split(10)] if mode == "gradual" else []
    tables = [split(50, TESTERS), *stepped, STABLE_ONLY]
    # Each route as first written, with what the canary Service selected then: a route sending
    # requests to the canary Service is written while that Service selects the canary revision.
    firsts = [(r, sel) for i, (r, sel) in enumerate(trail.values) if i == 0 or trail.values[i - 1][0] != r]
    assert [r for r, _ in firsts] == [router.expected(t) for t in tables]
    assert [sel for _, sel in firsts[:-1]] == [(v1, v2)] * (len(tables) - 1)
    assert router.selected(api) == after
    assert status(api, "web")["stableRevision"] == v1
    no_router_failures(api)
    router.check_written(api, shared_crds)


@pytest.mark.parametrize("router_type", ROUTERS)
async def test_canary_promote_then_undo_is_fast_tracked(
    api: ApiServer,
    client: AsyncClient,
    running: tuple[ControllerThread, ReadinessDriver],
    shared_crds: Path,
    router_type: type[Router],
) -> None:
    router = router_type()
    steps = [{"setWeight": 30}, {"pause": {}}]
    doc, v1 = await start(api, client, router, canary(steps, router))
    doc2 = await set_image(client, "web", doc, "example/app:2.0")
    v2 = revision_of(doc2)

    await until(api, lambda: step(api, "web") == 1 and weights(api, "web") == {v1: 70, v2: 30})
    await until(api, lambda: router.routes(api, split(30)))
    assert replicasets(api, "web") == {v1: 4, v2: 2}
    assert router.selected(api) == (v1, v2)

    await command(client, "web", "promote")
    await until(api, lambda: healthy(api, "web", v2))
    await until(api, lambda: selector(api, STABLE) == v2 and router.routes(api, STABLE_ONLY))
    # The old stable stays up for its scale-down delay, so that an undo is instant.
    assert replicasets(api, "web") == {v1: 4, v2: 4}

    await command(client, "web", "undo")
    await until(api, lambda: healthy(api, "web", v1) and selector(api, STABLE) == v1)
    assert status(api, "web")["lastCompletion"]["result"] == "fastTracked"
    await until(api, lambda: router.routes(api, STABLE_ONLY))
    assert router.read(api) == router.expected(STABLE_ONLY)
    assert replicasets(api, "web")[v1] == 4
    no_router_failures(api)
    router.check_written(api, shared_crds)


# --- A/B test ----------------------------------------------------------------------------------------------


def ab_strategy(router: Router, control: Rule | None, candidate: Rule) -> dict[str, Any]:
    variants: list[dict[str, Any]] = [{"name": "a", "role": "control"}, {"name": "b", "role": "candidate"}]
    if control is not None:
        variants[0]["match"] = [control.spec_match()]
    variants[1]["match"] = [candidate.spec_match()]
    return {
        "abTest": {
            "variants": variants,
            "duration": "1h",
            "stableService": STABLE,
            "canaryService": CANARY,
            "trafficRouting": router.routing,
        }
    }


# Per router and match kind: the control's rule (None: the control gets every request the
# candidate's rule does not take, the only way the nginx router can split) and the candidate's;
# then how the test ends.
AB_CASES = [
    pytest.param(
        GatewayAPI,
        Rule("variant-a", STABLE, "header", "x-variant", "a"),
        Rule("variant-b", CANARY, "header", "x-variant", "b"),
        "abort",
        id="gatewayAPI-header-abort",
    ),
    pytest.param(
        GatewayAPI,
        Rule("variant-a", STABLE, "cookie", "variant", "a"),
        Rule("variant-b", CANARY, "cookie", "variant", "b"),
        "promote",
        id="gatewayAPI-cookie-promote",
    ),
    pytest.param(
        NginxIngress, None, Rule("variant-b", CANARY, "header", "x-variant", "b"), "abort", id="nginx-header-abort"
    ),
    pytest.param(
        NginxIngress, None, Rule("variant-b", CANARY, "cookie", "beta", "always"), "promote", id="nginx-cookie-promote"
    ),
]


@pytest.mark.parametrize(("router_type", "control", "candidate", "end"), AB_CASES)
async def test_ab_test_routes_variants_by_match_then_ends(
    api: ApiServer,
    client: AsyncClient,
    running: tuple[ControllerThread, ReadinessDriver],
    shared_crds: Path,
    router_type: type[Router],
    control: Rule | None,
    candidate: Rule,
    end: str,
) -> None:
    router = router_type()
    doc, v1 = await start(api, client, router, ab_strategy(router, control, candidate))
    doc2 = await set_image(client, "web", doc, "example/app:2.0")
    v2 = revision_of(doc2)

    # Control's rule first: a request both claim stays on what users already know.
    experiment = Table(STABLE_ONLY.split, tuple(r for r in (control, candidate) if r is not None))
    await until(api, lambda: status(api, "web").get("stage") == "experiment")
    await until(api, lambda: router.routes(api, experiment))
    # A candidate chosen by match rules gets every replica: nobody knows how much its rules select.
    assert replicasets(api, "web") == {v1: 4, v2: 4}
    assert router.selected(api) == (v1, v2)

    await command(client, "web", end)
    if end == "abort":
        await until(api, lambda: status(api, "web").get("phase") == "Aborted")
        await until(api, lambda: replicasets(api, "web") == {v1: 4, v2: 0})
        await until(api, lambda: router.routes(api, STABLE_ONLY))
        assert router.selected(api) == (v1, v1)
    else:
        await until(api, lambda: healthy(api, "web", v2))
        await until(api, lambda: router.routes(api, STABLE_ONLY) and selector(api, STABLE) == v2)
        assert replicasets(api, "web") == {v1: 4, v2: 4}  # the control stays up for its scale-down delay
    assert router.read(api) == router.expected(STABLE_ONLY)
    no_router_failures(api)
    router.check_written(api, shared_crds)


# --- shadow (Gateway API only: the nginx router cannot mirror, a lint error) ---------------------------------


async def test_gateway_api_shadow_mirrors_a_percent_then_promotes_by_steps(
    api: ApiServer, client: AsyncClient, running: tuple[ControllerThread, ReadinessDriver], shared_crds: Path
) -> None:
    router = GatewayAPI()
    strategy = {
        "shadow": {
            "mirrorPercent": 50,
            "duration": "1h",
            "stableService": STABLE,
            "canaryService": CANARY,
            "trafficRouting": router.routing,
            "promotion": {"steps": [{"setWeight": 40}, {"pause": {}}]},
        }
    }
    doc, v1 = await start(api, client, router, strategy)
    doc2 = await set_image(client, "web", doc, "example/app:2.0")
    v2 = revision_of(doc2)

    mirroring = Table(STABLE_ONLY.split, mirrors=(Mirror("shadow", CANARY, 50),))
    await until(api, lambda: status(api, "web").get("stage") == "mirroring")
    await until(api, lambda: router.routes(api, mirroring))
    # ceil(4 x 50%) shadow replicas; users all on stable, half the requests copied to the shadow.
    assert replicasets(api, "web") == {v1: 4, v2: 2}
    assert router.selected(api) == (v1, v2)

    await command(client, "web", "promote")  # ends the shadow phase: the promotion steps follow
    await until(api, lambda: weights(api, "web") == {v1: 60, v2: 40})
    await until(api, lambda: router.routes(api, split(40)))
    assert router.read(api) == router.expected(split(40))
    assert replicasets(api, "web") == {v1: 4, v2: 2}

    await command(client, "web", "promote")
    await until(api, lambda: healthy(api, "web", v2))
    await until(api, lambda: router.routes(api, STABLE_ONLY) and selector(api, STABLE) == v2)
    assert router.read(api) == router.expected(STABLE_ONLY)
    assert replicasets(api, "web") == {v1: 4, v2: 4}
    no_router_failures(api)
    router.check_written(api, shared_crds)


# --- what a router cannot do: a lint error, and a paused rollout if it is applied anyway ---------------------


def lint_problems(tmp_path: Path, doc: dict[str, Any]) -> list[str]:
    path = tmp_path / "web.yaml"
    rollout = {"apiVersion": "rollwise.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"}, "spec": doc}
    path.write_text(yaml.safe_dump(rollout, sort_keys=False))
    return [f"{p.path}: {p.message}" for p in lint_paths([path]).errors]


async def test_nginx_ab_test_with_a_control_match_is_a_lint_error_and_pauses_when_applied(
    api: ApiServer,
    client: AsyncClient,
    running: tuple[ControllerThread, ReadinessDriver],
    tmp_path: Path,
) -> None:
    """ingress-nginx sends matched requests to the canary Service only: a control with match rules
    cannot be routed. Lint says so; a spec applied without lint pauses at the router, touching
    nothing, and continues once the control's rules are gone and the rollout is resumed."""
    router = NginxIngress()
    control = Rule("variant-a", STABLE, "header", "x-variant", "a")
    candidate = Rule("variant-b", CANARY, "header", "x-variant", "b")
    strategy = ab_strategy(router, control, candidate)
    problems = lint_problems(tmp_path, spec(strategy))
    assert len(problems) == 1, problems
    assert problems[0].startswith("spec.strategy.abTest.variants[0].match: the nginx router cannot send matched")
    assert problems[0].endswith("routers that can: istio, gatewayAPI, local")

    doc, v1 = await start(api, client, router, strategy)
    doc2 = await set_image(client, "web", doc, "example/app:2.0")
    v2 = revision_of(doc2)

    def router_paused() -> bool:
        s = status(api, "web")
        routed = {c["type"]: c for c in s.get("conditions") or []}.get("TrafficRouted") or {}
        return s.get("phase") == "Paused" and routed.get("status") == "False"

    await until(api, router_paused)
    failed = [e for e in events(api, "web") if e[1] == "RouterFailed"]
    assert failed == [
        (
            "Warning",
            "RouterFailed",
            "nginx: the nginx router holds one match route at a time, the table has variant-a, variant-b",
        )
    ]
    assert router.read(api) == router.expected(STABLE_ONLY)  # nothing written
    assert selector(api, STABLE) == v1

    fixed = ab_strategy(router, None, candidate)
    assert lint_problems(tmp_path, spec(fixed)) == []
    await client.patch(Rollout, "web", {"spec": {"strategy": fixed}}, namespace=NS, patch_type=PatchType.MERGE)
    await command(client, "web", "resume")
    await until(api, lambda: status(api, "web").get("phase") != "Paused")
    await until(api, lambda: router.routes(api, Table(STABLE_ONLY.split, (candidate,))))
    assert replicasets(api, "web") == {v1: 4, v2: 4}
    assert router.selected(api) == (v1, v2)


async def test_gateway_api_canary_matched_mirror_step_then_removed(
    api: ApiServer, client: AsyncClient, running: tuple[ControllerThread, ReadinessDriver], shared_crds: Path
) -> None:
    """setMirrorRoute with a match: a named copy of the managed rule (the same split) carrying a
    RequestMirror filter with the percent; setMirrorRoute with only the name removes it."""
    router = GatewayAPI()
    mirror_match = Rule("mirror-testers", CANARY, "header", "x-mirror", "yes")
    steps = [
        {"setMirrorRoute": {"name": "mirror-testers", "match": [mirror_match.spec_match()], "percent": 30}},
        {"setWeight": 20},
        {"pause": {}},
        {"setMirrorRoute": {"name": "mirror-testers"}},
        {"pause": {}},
    ]
    doc, v1 = await start(api, client, router, canary(steps, router))
    doc2 = await set_image(client, "web", doc, "example/app:2.0")
    v2 = revision_of(doc2)

    mirrored = Table(split(20).split, mirrors=(Mirror("mirror-testers", CANARY, 30, mirror_match),))
    await until(api, lambda: step(api, "web") == 2 and weights(api, "web") == {v1: 80, v2: 20})
    await until(api, lambda: router.routes(api, mirrored))
    # Mirrored requests are traffic too: ceil(4 x 30%) replicas, more than the 20% weight needs.
    assert replicasets(api, "web") == {v1: 4, v2: 2}
    assert router.selected(api) == (v1, v2)

    await command(client, "web", "promote")
    await until(api, lambda: step(api, "web") == 4)
    await until(api, lambda: router.routes(api, split(20)))
    await until(api, lambda: replicasets(api, "web") == {v1: 4, v2: 1})

    await command(client, "web", "promote")
    await until(api, lambda: healthy(api, "web", v2))
    await until(api, lambda: router.routes(api, STABLE_ONLY) and selector(api, STABLE) == v2)
    assert router.read(api) == router.expected(STABLE_ONLY)
    no_router_failures(api)
    router.check_written(api, shared_crds)


@pytest.mark.parametrize("router_type", ROUTERS)
async def test_canary_undo_after_the_old_revision_is_gone_goes_through_the_steps(
    api: ApiServer,
    client: AsyncClient,
    running: tuple[ControllerThread, ReadinessDriver],
    shared_crds: Path,
    router_type: type[Router],
) -> None:
    """With scaleDownDelaySeconds: 0 the old stable is scaled down on promotion, so an undo is an
    ordinary update back to it: the canary Service selects the old revision, the steps run again."""
    router = router_type()
    strategy = canary([{"setWeight": 30}, {"pause": {}}], router)
    strategy["canary"]["scaleDownDelaySeconds"] = 0
    doc, v1 = await start(api, client, router, strategy)
    doc2 = await set_image(client, "web", doc, "example/app:2.0")
    v2 = revision_of(doc2)
    await until(api, lambda: step(api, "web") == 1 and router.routes(api, split(30)))
    await command(client, "web", "promote")
    await until(api, lambda: healthy(api, "web", v2) and replicasets(api, "web") == {v1: 0, v2: 4})
    await until(api, lambda: router.routes(api, STABLE_ONLY) and router.selected(api) == (v2, v2))

    await command(client, "web", "undo")
    await until(api, lambda: step(api, "web") == 1 and weights(api, "web") == {v2: 70, v1: 30})
    await until(api, lambda: router.routes(api, split(30)))
    assert replicasets(api, "web") == {v1: 2, v2: 4}
    assert router.selected(api) == (v2, v1)
    assert status(api, "web")["undo"]["revision"] == v1

    await command(client, "web", "promote")
    await until(api, lambda: healthy(api, "web", v1))
    await until(api, lambda: router.routes(api, STABLE_ONLY) and router.selected(api) == (v1, v1))
    await until(api, lambda: replicasets(api, "web") == {v1: 4, v2: 0})
    assert router.read(api) == router.expected(STABLE_ONLY)
    no_router_failures(api)
    router.check_written(api, shared_crds)
