"""The Istio router against the emulated API server with Istio's own CRDs: the VirtualService (and
DestinationRule) it writes for each route table, read-back verification, and someone else's edit."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from lightkube import AsyncClient

from rollwise.engine.plan import MatchRoute, MirrorRoute, RouteTable
from rollwise.platforms.kubernetes.routers import Backends, RouterError, router_for, verify_routes
from rollwise.platforms.kubernetes.routers.istio import DestinationRule, IstioRouter, VirtualService
from rollwise.spec.match import RouteMatch
from rollwise.spec.rollout import Rollout
from rollwise.testing.kubeapi import ApiServer
from tests.kube.router_checks import check_all_custom, sent, spec_of

BACKENDS = Backends(services={"r1": "echo-stable", "r2": "echo-canary"}, roles={"r1": "stable", "r2": "canary"})

ADMIN_ROUTE = {
    "name": "admin",
    "match": [{"uri": {"prefix": "/admin"}}],
    "route": [{"destination": {"host": "admin", "port": {"number": 8080}}}],
}
PRIMARY = {
    "name": "primary",
    "match": [{"uri": {"prefix": "/"}}],
    "timeout": "5s",
    "retries": {"attempts": 3, "perTryTimeout": "2s"},
    "route": [{"destination": {"host": "echo-stable", "port": {"number": 80}}, "weight": 100}],
}
BETA = (
    RouteMatch.model_validate({"headers": [{"name": "X-Canary", "exact": "always"}]}),
    RouteMatch.model_validate(
        {"cookies": [{"name": "beta", "regex": "^(yes|true)$"}], "queryParams": [{"name": "preview", "prefix": "1"}]}
    ),
)
COOKIE_BETA = r"^(?:.*;\s*)?beta=(?:(yes|true))(?:;.*)?$"


def rollout(routing: dict[str, Any], services: bool = True) -> Rollout:
    canary: dict[str, Any] = {"steps": [{"setWeight": 10}], "trafficRouting": {"istio": routing}}
    if services:
        canary |= {"stableService": "echo-stable", "canaryService": "echo-canary"}
    return Rollout.model_validate(
        {
            "apiVersion": "rollwise.dev/v1alpha1",
            "kind": "Rollout",
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


def virtual_service(http: list[dict[str, Any]]) -> Any:
    return VirtualService.from_dict(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "echo", "namespace": "default", "labels": {"team": "web"}},
            "spec": {"hosts": ["echo.example.com"], "gateways": ["public"], "http": copy.deepcopy(http)},
        }
    )


def dest(host: str, weight: int | None = None, subset: str | None = None, port: int | None = 80) -> dict[str, Any]:
    d: dict[str, Any] = {"host": host}
    if subset:
        d["subset"] = subset
    if port is not None:
        d["port"] = {"number": port}
    return {"destination": d} | ({"weight": weight} if weight is not None else {})


def header_route(name: str, route: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "match": [
            {"uri": {"prefix": "/"}, "headers": {"x-canary": {"exact": "always"}}},
            {
                "uri": {"prefix": "/"},
                "headers": {"cookie": {"regex": COOKIE_BETA}},
                "queryParams": {"preview": {"prefix": "1"}},
            },
        ],
        "timeout": "5s",
        "retries": {"attempts": 3, "perTryTimeout": "2s"},
        "route": route,
        **extra,
    }


async def step(router: Any, table: RouteTable, backends: Backends = BACKENDS) -> list[str]:
    await router.apply(table, backends)
    return verify_routes(table, backends, await router.observe(backends))


@pytest.mark.asyncio
async def test_istio_sequence_by_service(api: ApiServer, client: AsyncClient, shared_crds: Path) -> None:
    await client.create(virtual_service([ADMIN_ROUTE, PRIMARY]))
    before = api.get_object("networking.istio.io/v1", "VirtualService", "default", "echo")
    assert before is not None
    router = router_for(rollout({"virtualService": {"name": "echo", "routes": ["primary"]}}), client, "rollwise")
    assert isinstance(router, IstioRouter)

    # 100/0: already so; nothing to write.
    assert await step(router, RouteTable({"r1": 100})) == []
    assert spec_of(api, "networking.istio.io/v1", "VirtualService", "echo") == before["spec"]

    assert await step(router, RouteTable({"r1": 90, "r2": 10})) == []
    writes = len(sent(api, "virtualservices"))
    assert await step(router, RouteTable({"r1": 90, "r2": 10})) == []
    assert len(sent(api, "virtualservices")) == writes, "an apply that changes nothing writes nothing"
    vs = api.get_object("networking.istio.io/v1", "VirtualService", "default", "echo")
    assert vs is not None
    assert vs["spec"]["http"] == [ADMIN_ROUTE, PRIMARY | {"route": [dest("echo-stable", 90), dest("echo-canary", 10)]}]
    assert vs["spec"]["hosts"] == ["echo.example.com"] and vs["spec"]["gateways"] == ["public"]
    assert vs["metadata"]["labels"] == {"team": "web"}

    table = RouteTable({"r1": 50, "r2": 50}, matches=(MatchRoute("beta", "r2", BETA),))
    assert await step(router, table) == []
    http = spec_of(api, "networking.istio.io/v1", "VirtualService", "echo")["http"]
    assert http == [
        ADMIN_ROUTE,
        header_route("rollwise-beta", [dest("echo-canary")]),
        PRIMARY | {"route": [dest("echo-stable", 50), dest("echo-canary", 50)]},
    ]

    table = RouteTable(
        {"r1": 100},
        mirrors=(
            MirrorRoute("shadow", "r2", 20),
            MirrorRoute("beta-mirror", "r2", 30, (BETA[0],)),
        ),
    )
    assert await step(router, table) == []
    http = spec_of(api, "networking.istio.io/v1", "VirtualService", "echo")["http"]
    canary = {"host": "echo-canary", "port": {"number": 80}}
    assert http == [
        ADMIN_ROUTE,
        {
            "name": "rollwise-beta-mirror",
            "match": [{"uri": {"prefix": "/"}, "headers": {"x-canary": {"exact": "always"}}}],
            "timeout": "5s",
            "retries": {"attempts": 3, "perTryTimeout": "2s"},
            "route": [dest("echo-stable", 100)],
            "mirror": canary,
            "mirrorPercentage": {"value": 30.0},
        },
        PRIMARY | {"route": [dest("echo-stable", 100)], "mirror": canary, "mirrorPercentage": {"value": 20.0}},
    ]

    # Back to 100/0 with nothing else: the object reads exactly as the user wrote it.
    assert await step(router, RouteTable({"r1": 100})) == []
    assert spec_of(api, "networking.istio.io/v1", "VirtualService", "echo") == before["spec"]
    assert check_all_custom(api, shared_crds, "virtualservices") >= 5


@pytest.mark.asyncio
async def test_istio_keeps_what_the_user_changes_meanwhile(
    api: ApiServer, client: AsyncClient, shared_crds: Path
) -> None:
    await client.create(virtual_service([ADMIN_ROUTE, PRIMARY]))
    router = router_for(rollout({"virtualService": {"name": "echo", "routes": ["primary"]}}), client, "rollwise")
    assert router is not None
    table = RouteTable({"r1": 90, "r2": 10}, matches=(MatchRoute("beta", "r2", (BETA[0],)),))
    await router.apply(table, BACKENDS)

    # The user adds a route and a gateway; Rollwise's next write keeps both.
    live = await client.get(VirtualService, "echo", namespace="default")
    live["spec"]["gateways"].append("mesh")
    live["spec"]["http"].insert(0, {"name": "legacy", "route": [{"destination": {"host": "legacy"}}]})
    await client.replace(live)
    assert await step(router, RouteTable({"r1": 50, "r2": 50})) == []
    spec = spec_of(api, "networking.istio.io/v1", "VirtualService", "echo")
    assert spec["gateways"] == ["public", "mesh"]
    assert [r["name"] for r in spec["http"]] == ["legacy", "admin", "primary"]

    # Another writer sets the weights back behind Rollwise's back: read-back says so.
    live = await client.get(VirtualService, "echo", namespace="default")
    primary = next(r for r in live["spec"]["http"] if r["name"] == "primary")
    primary["route"] = [dest("echo-stable", 100)]
    await client.replace(live)
    problems = verify_routes(RouteTable({"r1": 50, "r2": 50}), BACKENDS, await router.observe(BACKENDS))
    assert problems == ["weights read back as {echo-stable: 100}, expected {echo-canary: 50, echo-stable: 50}"]
    # ...and so does a match route someone deleted.
    await router.apply(table, BACKENDS)
    live = await client.get(VirtualService, "echo", namespace="default")
    live["spec"]["http"] = [r for r in live["spec"]["http"] if r["name"] != "rollwise-beta"]
    await client.replace(live)
    problems = verify_routes(table, BACKENDS, await router.observe(BACKENDS))
    assert len(problems) == 1 and problems[0].startswith("match routes read back as [], expected [echo-canary header")
    check_all_custom(api, shared_crds, "virtualservices")


@pytest.mark.asyncio
async def test_istio_subsets_of_a_destination_rule(api: ApiServer, client: AsyncClient, shared_crds: Path) -> None:
    only = {"route": [dest("echo", 100, subset="stable", port=None)]}
    await client.create(virtual_service([only]))
    await client.create(
        DestinationRule.from_dict(
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "DestinationRule",
                "metadata": {"name": "echo", "namespace": "default"},
                "spec": {
                    "host": "echo",
                    "trafficPolicy": {"loadBalancer": {"simple": "LEAST_REQUEST"}},
                    "subsets": [
                        {"name": "stable", "labels": {"app": "echo"}},
                        {"name": "canary", "labels": {"app": "echo"}},
                    ],
                },
            }
        )
    )
    routing = {"virtualService": {"name": "echo"}, "destinationRule": {"name": "echo"}}
    router = router_for(rollout(routing, services=False), client, "rollwise")
    assert router is not None
    backends = Backends(services={}, roles={"r1": "stable", "r2": "canary"})

    assert await step(router, RouteTable({"r1": 80, "r2": 20}, mirrors=(MirrorRoute("m", "r2", 5),)), backends) == []
    spec = spec_of(api, "networking.istio.io/v1", "DestinationRule", "echo")
    assert spec == {
        "host": "echo",
        "trafficPolicy": {"loadBalancer": {"simple": "LEAST_REQUEST"}},
        "subsets": [
            {"name": "stable", "labels": {"app": "echo", "rollwise.dev/revision": "r1"}},
            {"name": "canary", "labels": {"app": "echo", "rollwise.dev/revision": "r2"}},
        ],
    }
    assert spec_of(api, "networking.istio.io/v1", "VirtualService", "echo")["http"] == [
        {
            "route": [dest("echo", 80, subset="stable", port=None), dest("echo", 20, subset="canary", port=None)],
            "mirror": {"host": "echo", "subset": "canary"},
            "mirrorPercentage": {"value": 5.0},
        }
    ]

    # A new canary revision moves the canary subset; someone relabelling it is seen on read-back.
    backends = Backends(services={}, roles={"r1": "stable", "r3": "canary"})
    assert await step(router, RouteTable({"r1": 100}), backends) == []
    live = await client.get(DestinationRule, "echo", namespace="default")
    assert [s["labels"]["rollwise.dev/revision"] for s in live["spec"]["subsets"]] == ["r1", "r3"]
    live["spec"]["subsets"][0]["labels"]["rollwise.dev/revision"] = "r0"
    await client.replace(live)
    problems = verify_routes(RouteTable({"r1": 100}), backends, await router.observe(backends))
    assert problems == ["DestinationRule subset stable selects revision r0, expected r1"]
    check_all_custom(api, shared_crds, "virtualservices")
    check_all_custom(api, shared_crds, "destinationrules")


@pytest.mark.asyncio
async def test_istio_refuses_what_it_cannot_do(api: ApiServer, client: AsyncClient, shared_crds: Path) -> None:
    await client.create(virtual_service([ADMIN_ROUTE, PRIMARY]))
    router = router_for(rollout({"virtualService": {"name": "echo"}}), client, "rollwise")
    assert router is not None
    with pytest.raises(RouterError, match="has 2 HTTP routes of its own: name the managed ones"):
        await router.apply(RouteTable({"r1": 100}), BACKENDS)
    router = router_for(rollout({"virtualService": {"name": "echo", "routes": ["main"]}}), client, "rollwise")
    assert router is not None
    with pytest.raises(RouterError, match="has no HTTP route named main"):
        await router.apply(RouteTable({"r1": 100}), BACKENDS)
    router = router_for(rollout({"virtualService": {"name": "missing"}}), client, "rollwise")
    assert router is not None
    with pytest.raises(RouterError, match="VirtualService default/missing not found"):
        await router.observe(BACKENDS)
    sticky = RouteTable({"r1": 50, "r2": 50}, sticky_by=_sticky())
    with pytest.raises(RouterError, match=r"cannot do stickyWeight.*routers that can: local"):
        await router.apply(sticky, BACKENDS)


def _sticky() -> Any:
    from rollwise.spec.strategies.abtest import StickyKey

    return StickyKey(cookie="variant")


class RacingClient(AsyncClient):
    """A client whose next write is preceded by another writer's edit of the same object: the
    write then carries a stale resourceVersion, as when a user edits between Rollwise's read and
    write."""

    def __init__(self, *args: Any, other: AsyncClient, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.other = other
        self.races = 0

    async def replace(self, obj: Any, *args: Any, **kwargs: Any) -> Any:
        if self.races:
            self.races -= 1
            live = await self.other.get(VirtualService, "echo", namespace="default")
            live["spec"]["gateways"] = [*live["spec"]["gateways"], f"gw-{self.races}"]
            await self.other.replace(live)
        return await super().replace(obj, *args, **kwargs)


@pytest.mark.asyncio
async def test_istio_write_racing_another_writer_keeps_both(
    api: ApiServer, client: AsyncClient, shared_crds: Path
) -> None:
    from tests.kube.helpers import kubeconfig

    await client.create(virtual_service([ADMIN_ROUTE, PRIMARY]))
    async with RacingClient(kubeconfig(api), trust_env=False, other=client) as racing:
        racing.races = 2
        router = router_for(rollout({"virtualService": {"name": "echo", "routes": ["primary"]}}), racing, "rollwise")
        assert router is not None
        assert await step(router, RouteTable({"r1": 70, "r2": 30})) == []
    assert racing.races == 0
    conflicts = [a for a in api.audit if a.verb == "update" and a.resource == "virtualservices" and a.code == 409]
    assert len(conflicts) == 2
    spec = spec_of(api, "networking.istio.io/v1", "VirtualService", "echo")
    assert spec["gateways"] == ["public", "gw-1", "gw-0"]
    assert spec["http"][1]["route"] == [dest("echo-stable", 70), dest("echo-canary", 30)]

    # A writer that wins every race: Rollwise gives up with an error instead of looping.
    async with RacingClient(kubeconfig(api), trust_env=False, other=client) as racing:
        racing.races = 100
        router = router_for(rollout({"virtualService": {"name": "echo", "routes": ["primary"]}}), racing, "rollwise")
        assert router is not None
        with pytest.raises(RouterError, match=r"changed under every one of 8 writes \(409 Conflict\)"):
            await router.apply(RouteTable({"r1": 10, "r2": 90}), BACKENDS)
    check_all_custom(api, shared_crds, "virtualservices")


@pytest.mark.asyncio
async def test_istio_mirrors_beside_the_users_own(api: ApiServer, client: AsyncClient, shared_crds: Path) -> None:
    audit = {"destination": {"host": "audit"}, "percentage": {"value": 1.0}}
    await client.create(virtual_service([PRIMARY | {"mirrors": [audit]}]))
    router = router_for(rollout({"virtualService": {"name": "echo"}}), client, "rollwise")
    assert router is not None
    table = RouteTable({"r1": 100}, mirrors=(MirrorRoute("shadow", "r2", 20), MirrorRoute("more", "r2", 5)))
    assert await step(router, table) == []
    (primary,) = spec_of(api, "networking.istio.io/v1", "VirtualService", "echo")["http"]
    ours = [
        {"destination": {"host": "echo-canary", "port": {"number": 80}}, "percentage": {"value": 20.0}},
        {"destination": {"host": "echo-canary", "port": {"number": 80}}, "percentage": {"value": 5.0}},
    ]
    assert primary["mirrors"] == [audit, *ours] and "mirror" not in primary
    assert await step(router, RouteTable({"r1": 100})) == []
    (primary,) = spec_of(api, "networking.istio.io/v1", "VirtualService", "echo")["http"]
    assert primary == PRIMARY | {"mirrors": [audit]}

    # A user's single `mirror` cannot take a second destination: refused, and nothing written.
    live = await client.get(VirtualService, "echo", namespace="default")
    live["spec"]["http"][0] = PRIMARY | {"mirror": {"host": "audit"}}
    await client.replace(live)
    writes = len(sent(api, "virtualservices"))
    with pytest.raises(RouterError, match="already mirrors to audit with `mirror`"):
        await router.apply(RouteTable({"r1": 100}, mirrors=(MirrorRoute("shadow", "r2", 20),)), BACKENDS)
    assert len(sent(api, "virtualservices")) == writes
    check_all_custom(api, shared_crds, "virtualservices")


@pytest.mark.asyncio
async def test_istio_subsets_roles_from_the_services(api: ApiServer, client: AsyncClient, shared_crds: Path) -> None:
    """With stableService/canaryService, the controller's Backends need not name roles."""
    await client.create(virtual_service([{"route": [dest("echo", 100, subset="stable", port=None)]}]))
    subsets = [{"name": "stable", "labels": {"app": "echo"}}, {"name": "canary", "labels": {"app": "echo"}}]
    await client.create(
        DestinationRule.from_dict(
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "DestinationRule",
                "metadata": {"name": "echo", "namespace": "default"},
                "spec": {"host": "echo.default.svc.cluster.local", "subsets": subsets},
            }
        )
    )
    routing = {"virtualService": {"name": "echo"}, "destinationRule": {"name": "echo"}}
    router = router_for(rollout(routing), client, "rollwise")
    assert router is not None
    backends = Backends(services={"r1": "echo-stable", "r2": "echo-canary"})
    assert await step(router, RouteTable({"r1": 60, "r2": 40}), backends) == []
    # The route keeps its own spelling of the DestinationRule's host.
    assert spec_of(api, "networking.istio.io/v1", "VirtualService", "echo")["http"] == [
        {"route": [dest("echo", 60, subset="stable", port=None), dest("echo", 40, subset="canary", port=None)]}
    ]
    labels = [s["labels"] for s in spec_of(api, "networking.istio.io/v1", "DestinationRule", "echo")["subsets"]]
    assert labels == [{"app": "echo", "rollwise.dev/revision": "r1"}, {"app": "echo", "rollwise.dev/revision": "r2"}]
    check_all_custom(api, shared_crds, "destinationrules")
