"""The NGINX Ingress router against the emulated API server: the canary Ingress it applies for each
route table (validated with Kubernetes' own schema, strict), read-back verification, and someone
else's edit."""

from __future__ import annotations

from typing import Any

import pytest
from lightkube import AsyncClient
from lightkube.resources.networking_v1 import Ingress

from rollwise.engine.plan import MatchRoute, MirrorRoute, RouteTable
from rollwise.platforms.kubernetes.routers import Backends, RouterError, router_for, verify_routes
from rollwise.platforms.kubernetes.routers.nginx import NginxRouter
from rollwise.spec.match import RouteMatch
from rollwise.spec.rollout import Rollout
from rollwise.testing.kubeapi import ApiServer
from tests.kube.helpers import rollout as rollout_object
from tests.kube.router_checks import check_builtin, sent

P = "nginx.ingress.kubernetes.io"
BACKENDS = Backends(services={"r1": "echo-stable", "r2": "echo-canary"})
STABLE = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "Ingress",
    "metadata": {
        "name": "echo",
        "namespace": "default",
        "annotations": {f"{P}/proxy-body-size": "8m"},
    },
    "spec": {
        "ingressClassName": "nginx",
        "tls": [{"hosts": ["echo.example.com"], "secretName": "echo-tls"}],
        "rules": [
            {
                "host": "echo.example.com",
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "echo-stable", "port": {"number": 80}}},
                        },
                        {
                            "path": "/docs",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "docs", "port": {"name": "http"}}},
                        },
                    ]
                },
            }
        ],
    },
}


async def setup(client: AsyncClient, extra: dict[str, str] | None = None) -> tuple[NginxRouter, str]:
    created = await client.create(rollout_object("echo"))
    uid = created.metadata.uid
    await client.create(Ingress.from_dict(STABLE))
    nginx: dict[str, Any] = {"ingress": "echo"}
    if extra:
        nginx["additionalIngressAnnotations"] = extra
    spec = Rollout.model_validate(
        {
            "metadata": {"name": "echo", "namespace": "default", "uid": uid},
            "spec": {
                "selector": {"matchLabels": {"app": "echo"}},
                "template": {
                    "metadata": {"labels": {"app": "echo"}},
                    "spec": {"containers": [{"name": "app", "image": "example/echo:1"}]},
                },
                "strategy": {
                    "canary": {
                        "steps": [{"setWeight": 10}],
                        "stableService": "echo-stable",
                        "canaryService": "echo-canary",
                        "trafficRouting": {"nginx": nginx},
                    }
                },
            },
        }
    )
    router = router_for(spec, client, "rollwise")
    assert isinstance(router, NginxRouter)
    return router, uid


def canary_ingress(uid: str, annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "name": "echo-canary",
        "namespace": "default",
        "labels": {"rollwise.dev/rollout": "echo"},
        "annotations": annotations,
        "ownerReferences": [
            {
                "apiVersion": "rollwise.dev/v1alpha1",
                "kind": "Rollout",
                "name": "echo",
                "uid": uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


CANARY_SPEC = {
    "ingressClassName": "nginx",
    "rules": [
        {
            "host": "echo.example.com",
            "http": {
                "paths": [
                    {
                        "path": "/",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": "echo-canary", "port": {"number": 80}}},
                    }
                ]
            },
        }
    ],
}
SERVER_META = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields")


def stored(api: ApiServer, name: str) -> dict[str, Any] | None:
    obj = api.get_object("networking.k8s.io/v1", "Ingress", "default", name)
    if obj is not None:
        for key in SERVER_META:
            obj["metadata"].pop(key, None)
    return obj


async def step(router: NginxRouter, table: RouteTable) -> list[str]:
    await router.apply(table, BACKENDS)
    return verify_routes(table, BACKENDS, await router.observe(BACKENDS))


@pytest.mark.asyncio
async def test_nginx_sequence(api: ApiServer, client: AsyncClient) -> None:
    router, uid = await setup(client, {"canary-weight-total": "1000"})
    user = stored(api, "echo")

    assert await step(router, RouteTable({"r1": 100})) == []
    assert stored(api, "echo-canary") is None

    assert await step(router, RouteTable({"r1": 90, "r2": 10})) == []
    # Weights count out of the canary-weight-total the user chose: 10% is 100 of 1000.
    base = {f"{P}/canary": "true", f"{P}/canary-weight-total": "1000"}
    assert stored(api, "echo-canary") == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": canary_ingress(uid, base | {f"{P}/canary-weight": "100"}),
        "spec": CANARY_SPEC,
    }

    header = RouteMatch.model_validate({"headers": [{"name": "X-Canary", "exact": "always"}]})
    assert await step(router, RouteTable({"r1": 50, "r2": 50}, matches=(MatchRoute("beta", "r2", (header,)),))) == []
    obj = stored(api, "echo-canary")
    assert obj is not None and obj["spec"] == CANARY_SPEC
    assert obj["metadata"]["annotations"] == base | {
        f"{P}/canary-weight": "500",
        f"{P}/canary-by-header": "X-Canary",
        f"{P}/canary-by-header-value": "always",
    }

    # A mirror is beyond ingress-nginx's canary annotations: refused, nothing written.
    with pytest.raises(RouterError, match=r"cannot do mirror.*routers that can: istio, gatewayAPI, local"):
        await router.apply(RouteTable({"r1": 100}, mirrors=(MirrorRoute("shadow", "r2", 20),)), BACKENDS)
    assert stored(api, "echo-canary") == obj

    # The header route gives way to a cookie route at weight 0: the header annotations go.
    cookie = RouteMatch.model_validate({"cookies": [{"name": "beta", "exact": "always"}]})
    assert await step(router, RouteTable({"r1": 100}, matches=(MatchRoute("c", "r2", (cookie,)),))) == []
    obj = stored(api, "echo-canary")
    assert obj is not None
    assert obj["metadata"]["annotations"] == base | {f"{P}/canary-weight": "0", f"{P}/canary-by-cookie": "beta"}

    pattern = RouteMatch.model_validate({"headers": [{"name": "x-canary", "regex": "^(on|yes)$"}]})
    assert await step(router, RouteTable({"r1": 80, "r2": 20}, matches=(MatchRoute("p", "r2", (pattern,)),))) == []
    obj = stored(api, "echo-canary")
    assert obj is not None
    assert obj["metadata"]["annotations"] == base | {
        f"{P}/canary-weight": "200",
        f"{P}/canary-by-header": "x-canary",
        f"{P}/canary-by-header-pattern": "^(on|yes)$",
    }

    assert await step(router, RouteTable({"r1": 100})) == []
    assert stored(api, "echo-canary") is None
    assert stored(api, "echo") == user
    bodies = sent(api, "ingresses")
    assert len(bodies) >= 5
    for body in bodies:
        check_builtin(body)


@pytest.mark.asyncio
async def test_nginx_weight_changed_behind_its_back(api: ApiServer, client: AsyncClient) -> None:
    router, _ = await setup(client)
    table = RouteTable({"r1": 90, "r2": 10})
    assert await step(router, table) == []
    live = await client.get(Ingress, "echo-canary", namespace="default")
    assert live.metadata is not None and live.metadata.annotations is not None
    live.metadata.annotations[f"{P}/canary-weight"] = "60"
    await client.replace(live, field_manager="someone")
    assert verify_routes(table, BACKENDS, await router.observe(BACKENDS)) == [
        "weights read back as {echo-canary: 60, echo-stable: 40}, expected {echo-canary: 10, echo-stable: 90}"
    ]
    # Someone points the stable Ingress elsewhere: read-back says so too.
    stable = await client.get(Ingress, "echo", namespace="default")
    assert stable.spec is not None and stable.spec.rules is not None
    paths = stable.spec.rules[0].http.paths  # type: ignore[union-attr]
    paths[0].backend.service.name = "elsewhere"  # type: ignore[union-attr]
    await client.replace(stable, field_manager="someone")
    problems = verify_routes(table, BACKENDS, await router.observe(BACKENDS))
    assert problems[0] == "Ingress echo no longer sends any path to echo-stable"
    with pytest.raises(RouterError, match="has no path sending to echo-stable"):
        await router.apply(table, BACKENDS)


@pytest.mark.asyncio
async def test_nginx_refuses_what_it_cannot_do(api: ApiServer, client: AsyncClient) -> None:
    router, _ = await setup(client)
    query = RouteMatch.model_validate({"queryParams": [{"name": "v", "exact": "2"}]})
    with pytest.raises(RouterError, match=r"cannot do queryExact.*routers that can: istio, gatewayAPI, local"):
        await router.apply(RouteTable({"r1": 100}, matches=(MatchRoute("q", "r2", (query,)),)), BACKENDS)
    cookie = RouteMatch.model_validate({"cookies": [{"name": "beta", "exact": "yes"}]})
    with pytest.raises(RouterError, match="cannot match cookie beta by exact 'yes'"):
        await router.apply(RouteTable({"r1": 100}, matches=(MatchRoute("c", "r2", (cookie,)),)), BACKENDS)
    header = RouteMatch.model_validate({"headers": [{"name": "x", "exact": "1"}]})
    two = (MatchRoute("a", "r2", (header,)), MatchRoute("b", "r2", (header,)))
    with pytest.raises(RouterError, match="one match route at a time"):
        await router.apply(RouteTable({"r1": 100}, matches=two), BACKENDS)
    # An Ingress of that name that is not the rollout's is never taken over.
    squatter = {**STABLE, "metadata": {"name": "echo-canary", "namespace": "default"}}
    await client.create(Ingress.from_dict(squatter))
    with pytest.raises(RouterError, match="exists and is not this rollout's canary Ingress"):
        await router.apply(RouteTable({"r1": 90, "r2": 10}), BACKENDS)
    assert sent(api, "ingresses")[-1]["metadata"]["name"] == "echo-canary"  # only the test's own create


def test_local_routing_has_no_kubernetes_router() -> None:
    spec = Rollout.model_validate(
        {
            "metadata": {"name": "echo", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "echo"}},
                "template": {
                    "metadata": {"labels": {"app": "echo"}},
                    "spec": {"containers": [{"name": "app", "image": "example/echo:1"}]},
                },
                "strategy": {"canary": {"steps": [{"setWeight": 10}], "trafficRouting": {"local": {}}}},
            },
        }
    )
    with pytest.raises(RouterError, match=r"trafficRouting\.local is the local platform's proxy"):
        router_for(spec, None, "rollwise")  # type: ignore[arg-type]
    plain = spec.model_copy(deep=True)
    assert plain.spec.strategy.canary is not None
    plain.spec.strategy.canary.traffic_routing = None
    assert router_for(plain, None, "rollwise") is None  # type: ignore[arg-type]
