"""The Gateway API router against the emulated API server with the upstream HTTPRoute CRD: the rules
it writes for each route table, read-back verification, and someone else's edit."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from lightkube import AsyncClient

from rollwise.engine.plan import MatchRoute, MirrorRoute, RouteTable
from rollwise.platforms.kubernetes.routers import Backends, RouterError, router_for, verify_routes
from rollwise.platforms.kubernetes.routers.gateway_api import GatewayAPIRouter, HTTPRoute
from rollwise.spec.match import RouteMatch
from rollwise.spec.rollout import Rollout
from rollwise.testing.kubeapi import ApiServer, load_crd_file, serve
from tests.kube.helpers import kubeconfig
from tests.kube.router_checks import check_all_custom, sent, spec_of

V1 = "gateway.networking.k8s.io/v1"
BACKENDS = Backends(services={"r1": "echo-stable", "r2": "echo-canary"})
BETA = (
    RouteMatch.model_validate({"headers": [{"name": "X-Canary", "exact": "always"}]}),
    RouteMatch.model_validate({"cookies": [{"name": "beta", "regex": "^(yes|true)$"}]}),
)
COOKIE_BETA = r"^(?:.*;\s*)?beta=(?:(yes|true))(?:;.*)?$"
# As stored: the server fills in the schema's defaults (group, kind, weight).
DOCS = {
    "name": "docs",
    "matches": [{"path": {"type": "PathPrefix", "value": "/docs"}}],
    "backendRefs": [{"name": "docs", "port": 8080, "group": "", "kind": "Service", "weight": 1}],
}
HEADERS = {"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "x-from", "value": "gw"}]}}
API_PATH = {"path": {"type": "PathPrefix", "value": "/api"}}


def api_rule(refs: list[dict[str, Any]], filters: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "name": "api",
        "matches": [API_PATH],
        "filters": [HEADERS, *(filters or [])],
        "backendRefs": refs,
        "timeouts": {"request": "10s"},
    } | extra


def ref(name: str, weight: int) -> dict[str, Any]:
    return {"group": "", "kind": "Service", "name": name, "port": 80, "weight": weight}


def mirror(percent: int) -> dict[str, Any]:
    backend = {"group": "", "kind": "Service", "name": "echo-canary", "port": 80}
    return {"type": "RequestMirror", "requestMirror": {"backendRef": backend, "percent": percent}}


def http_route() -> Any:
    user_api = {
        "name": "api",
        "matches": [API_PATH],
        "filters": [HEADERS],
        "backendRefs": [{"name": "echo-stable", "port": 80}],
        "timeouts": {"request": "10s"},
    }
    return HTTPRoute.from_dict(
        {
            "apiVersion": V1,
            "kind": "HTTPRoute",
            "metadata": {"name": "echo", "namespace": "default"},
            "spec": {
                "parentRefs": [{"name": "public"}],
                "hostnames": ["echo.example.com"],
                "rules": copy.deepcopy(
                    [
                        {k: v for k, v in DOCS.items() if k != "backendRefs"}
                        | {"backendRefs": [{"name": "docs", "port": 8080}]},
                        user_api,
                    ]
                ),
            },
        }
    )


def rollout() -> Rollout:
    canary = {
        "steps": [{"setWeight": 10}],
        "stableService": "echo-stable",
        "canaryService": "echo-canary",
        "trafficRouting": {"gatewayAPI": {"httpRoute": "echo"}},
    }
    return Rollout.model_validate(
        {
            "metadata": {"name": "echo", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "echo"}},
                "template": {
                    "metadata": {"labels": {"app": "echo"}},
                    "spec": {"containers": [{"name": "app", "image": "example/echo:1"}]},
                },
                "strategy": {"canary": canary},
            },
        }
    )


async def step(router: Any, table: RouteTable) -> list[str]:
    await router.apply(table, BACKENDS)
    return verify_routes(table, BACKENDS, await router.observe(BACKENDS))


def rules(api: ApiServer) -> Any:
    return spec_of(api, V1, "HTTPRoute", "echo")["rules"]


@pytest.mark.asyncio
async def test_gateway_api_sequence(api: ApiServer, client: AsyncClient, shared_crds: Path) -> None:
    await client.create(http_route())
    user = spec_of(api, V1, "HTTPRoute", "echo")
    router = router_for(rollout(), client, "rollwise")
    assert isinstance(router, GatewayAPIRouter)

    assert await step(router, RouteTable({"r1": 100})) == []
    assert rules(api) == [DOCS, api_rule([ref("echo-stable", 100)])]

    assert await step(router, RouteTable({"r1": 90, "r2": 10})) == []
    assert rules(api) == [DOCS, api_rule([ref("echo-stable", 90), ref("echo-canary", 10)])]

    assert await step(router, RouteTable({"r1": 50, "r2": 50}, matches=(MatchRoute("beta", "r2", BETA),))) == []
    writes = len(sent(api, "httproutes"))
    assert await step(router, RouteTable({"r1": 50, "r2": 50}, matches=(MatchRoute("beta", "r2", BETA),))) == []
    assert len(sent(api, "httproutes")) == writes, "an apply that changes nothing writes nothing"
    assert rules(api) == [
        DOCS,
        api_rule(
            [ref("echo-canary", 100)],
            name="rollwise-beta",
            matches=[
                API_PATH | {"headers": [{"type": "Exact", "name": "X-Canary", "value": "always"}]},
                API_PATH | {"headers": [{"type": "RegularExpression", "name": "Cookie", "value": COOKIE_BETA}]},
            ],
        ),
        api_rule([ref("echo-stable", 50), ref("echo-canary", 50)]),
    ]

    table = RouteTable(
        {"r1": 100}, mirrors=(MirrorRoute("shadow", "r2", 20), MirrorRoute("beta-mirror", "r2", 30, (BETA[0],)))
    )
    assert await step(router, table) == []
    assert rules(api) == [
        DOCS,
        api_rule(
            [ref("echo-stable", 100)],
            [mirror(30)],
            name="rollwise-beta-mirror",
            matches=[API_PATH | {"headers": [{"type": "Exact", "name": "X-Canary", "value": "always"}]}],
        ),
        api_rule([ref("echo-stable", 100)], [mirror(20)]),
    ]

    assert await step(router, RouteTable({"r1": 100})) == []
    spec = spec_of(api, V1, "HTTPRoute", "echo")
    assert spec["rules"] == [DOCS, api_rule([ref("echo-stable", 100)])]
    assert {k: v for k, v in spec.items() if k != "rules"} == {k: v for k, v in user.items() if k != "rules"}
    assert check_all_custom(api, shared_crds, "httproutes") >= 6


@pytest.mark.asyncio
async def test_gateway_api_weights_changed_behind_its_back(
    api: ApiServer, client: AsyncClient, shared_crds: Path
) -> None:
    await client.create(http_route())
    router = router_for(rollout(), client, "rollwise")
    assert router is not None
    table = RouteTable({"r1": 80, "r2": 20}, mirrors=(MirrorRoute("shadow", "r2", 10),))
    assert await step(router, table) == []

    live = await client.get(HTTPRoute, "echo", namespace="default")
    api_live = next(r for r in live["spec"]["rules"] if r["name"] == "api")
    api_live["backendRefs"] = [{"name": "echo-stable", "port": 80, "weight": 3}, {"name": "echo-canary", "port": 80}]
    api_live["filters"] = [HEADERS, mirror(50)]
    await client.replace(live)
    problems = verify_routes(table, BACKENDS, await router.observe(BACKENDS))
    assert problems == [
        "weights read back as {echo-canary: 25, echo-stable: 75}, expected {echo-canary: 20, echo-stable: 80}",
        "mirrors read back as [echo-canary 50 all requests], expected [echo-canary 10 all requests]",
    ]
    # The next apply puts it right and keeps the user's filter.
    assert await step(router, table) == []
    assert rules(api)[1] == api_rule([ref("echo-stable", 80), ref("echo-canary", 20)], [mirror(10)])
    check_all_custom(api, shared_crds, "httproutes")


@pytest.mark.asyncio
async def test_gateway_api_refuses_what_it_cannot_do(api: ApiServer, client: AsyncClient, shared_crds: Path) -> None:
    await client.create(http_route())
    router = router_for(rollout(), client, "rollwise")
    assert router is not None
    prefix = RouteMatch.model_validate({"headers": [{"name": "x-canary", "prefix": "al"}]})
    with pytest.raises(RouterError, match=r"cannot do headerPrefix.*routers that can: istio, local"):
        await router.apply(RouteTable({"r1": 100}, matches=(MatchRoute("p", "r2", (prefix,)),)), BACKENDS)
    # A query parameter by exact value it can do.
    query = RouteMatch.model_validate({"queryParams": [{"name": "v", "exact": "2"}]})
    assert await step(router, RouteTable({"r1": 100}, matches=(MatchRoute("Q_v2", "r2", (query,)),))) == []
    assert rules(api)[1]["name"] == "rollwise-q-v2"
    assert rules(api)[1]["matches"] == [API_PATH | {"queryParams": [{"type": "Exact", "name": "v", "value": "2"}]}]
    live = await client.get(HTTPRoute, "echo", namespace="default")
    for rule in live["spec"]["rules"]:
        rule["backendRefs"] = [{"name": "other", "port": 80}]
    await client.replace(live)
    with pytest.raises(RouterError, match="has 2 rules and none sends to echo-canary or echo-stable"):
        await router.apply(RouteTable({"r1": 100}), BACKENDS)


@pytest.mark.asyncio
async def test_gateway_api_without_rule_names_refuses_match_routes(shared_crds: Path) -> None:
    """An HTTPRoute CRD from before rule names reached the standard channel (Gateway API < v1.4)
    prunes `rules[].name`: Rollwise could not find its copies again, so it takes them back and
    says why. Weights, which need no copy, still work."""
    (crd,) = load_crd_file(shared_crds / "gateway.networking.k8s.io_httproutes.yaml")
    for version in crd["spec"]["versions"]:
        rule = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["rules"]["items"]
        del rule["properties"]["name"]
    async with serve() as api:
        api.add_crds([crd])
        async with AsyncClient(kubeconfig(api), trust_env=False, field_manager="tests") as client:
            await client.create(http_route())
            router = router_for(rollout(), client, "rollwise")
            assert router is not None
            assert await step(router, RouteTable({"r1": 90, "r2": 10})) == []
            before = rules(api)
            # (the user's own rule names are pruned by this schema too)
            assert before == [
                {k: v for k, v in DOCS.items() if k != "name"},
                {k: v for k, v in api_rule([ref("echo-stable", 90), ref("echo-canary", 10)]).items() if k != "name"},
            ]
            table = RouteTable({"r1": 90, "r2": 10}, matches=(MatchRoute("beta", "r2", BETA),))
            with pytest.raises(RouterError, match=r"schema has no rules\[\]\.name .* match routes and matched mirrors"):
                await router.apply(table, BACKENDS)
            assert rules(api) == before
            assert verify_routes(table, BACKENDS, await router.observe(BACKENDS)) == [
                "match routes read back as [], expected [echo-canary cookie beta regex '(yes|true)' or "
                "header x-canary exact 'always']"
            ]
        assert not api.errors, api.errors
