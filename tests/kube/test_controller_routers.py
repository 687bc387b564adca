"""The controller with each router (Istio VirtualService, Gateway API HTTPRoute, NGINX canary
Ingress): after each step, the exact ReplicaSets, Service selectors and routing object; a router
that cannot do its job pauses the rollout with a Warning event and a condition saying why."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lightkube import AsyncClient
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.networking_v1 import Ingress

from rollwise.testing.kubeapi import ApiServer
from tests.kube.controller_harness import (
    NS,
    STABLE_AND_CANARY,
    ControllerThread,
    ReadinessDriver,
    command,
    controller_running,
    events,
    replicasets,
    selector,
    settle,
    status,
    weights,
)
from tests.kube.router_checks import check_all_custom, check_builtin
from tests.kube.test_controller import create, healthy, revision_of, set_image, spec, step

pytestmark = pytest.mark.asyncio

VirtualService = create_namespaced_resource("networking.istio.io", "v1", "VirtualService", "virtualservices")
HTTPRoute = create_namespaced_resource("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes")
TESTERS = [{"headers": [{"name": "x-canary", "exact": "always"}]}]


@pytest_asyncio.fixture
async def running(
    api: ApiServer, client: AsyncClient, shared_crds: Path
) -> AsyncIterator[tuple[ControllerThread, ReadinessDriver]]:
    async with controller_running(api, client, STABLE_AND_CANARY) as running:
        yield running


async def virtual_service(client: AsyncClient) -> None:
    await client.create(
        VirtualService.from_dict(
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": {"name": "web", "namespace": NS},
                "spec": {
                    "hosts": ["web"],
                    "http": [
                        {
                            "name": "primary",
                            "route": [
                                {"destination": {"host": "web-stable"}, "weight": 100},
                                {"destination": {"host": "web-canary"}, "weight": 0},
                            ],
                        }
                    ],
                },
            }
        )
    )


def istio_routes(api: ApiServer) -> list[dict[str, Any]]:
    """[{name, match, weights {host: weight}, mirror (host, percent) or None}] of the VirtualService."""
    vs = api.get_object("networking.istio.io/v1", "VirtualService", NS, "web")
    assert vs is not None
    out = []
    for r in vs["spec"]["http"]:
        mirror = None
        if "mirror" in r:
            mirror = (r["mirror"]["host"], int((r.get("mirrorPercentage") or {}).get("value", 100)))
        out.append(
            {
                "name": r.get("name"),
                "match": r.get("match"),
                "weights": {d["destination"]["host"]: d.get("weight", 100) for d in r.get("route") or []},
                "mirror": mirror,
            }
        )
    return out


def canary(steps: list[dict[str, Any]], routing: dict[str, Any]) -> dict[str, Any]:
    return {
        "canary": {
            "stableService": "web-stable",
            "canaryService": "web-canary",
            "trafficRouting": routing,
            "steps": steps,
        }
    }


ISTIO = {"istio": {"virtualService": {"name": "web", "routes": ["primary"]}}}


async def test_istio_canary_weights_header_route_and_promotion(
    api: ApiServer, client: AsyncClient, running: tuple[ControllerThread, ReadinessDriver], shared_crds: Path
) -> None:
    await virtual_service(client)
    steps = [
        {"setWeight": 25},
        {"pause": {}},
        {"setHeaderRoute": {"name": "testers", "match": TESTERS}},
        {"setWeight": 50},
        {"pause": {}},
    ]
    doc = spec(canary(steps, ISTIO))
    v1 = revision_of(doc)
    await create(client, "web", doc)
    await settle(api, lambda: healthy(api, "web", v1))
    assert istio_routes(api) == [{"name": "primary", "match": None, "weights": {"web-stable": 100}, "mirror": None}]

    doc2 = await set_image(client, "web", doc, "example/app:2.0")
    v2 = revision_of(doc2)
    await settle(api, lambda: step(api, "web") == 1 and weights(api, "web") == {v1: 75, v2: 25})
    # With a router the stable revision keeps every replica (an abort takes traffic back at once).
    assert replicasets(api, "web") == {v1: 4, v2: 1}
    assert (selector(api, "web-stable"), selector(api, "web-canary")) == (v1, v2)
    assert istio_routes(api) == [
        {"name": "primary", "match": None, "weights": {"web-stable": 75, "web-canary": 25}, "mirror": None}
    ]

    await command(client, "web", "promote")
    await settle(api, lambda: step(api, "web") == 4 and weights(api, "web") == {v1: 50, v2: 50})
    assert replicasets(api, "web") == {v1: 4, v2: 2}
    routes = istio_routes(api)
    assert [r["name"] for r in routes] == ["rollwise-testers", "primary"]
    assert routes[0]["weights"] == {"web-canary": 100}
    assert routes[0]["match"] == [{"headers": {"x-canary": {"exact": "always"}}}]
    assert routes[1]["weights"] == {"web-stable": 50, "web-canary": 50}

    await command(client, "web", "promote")
    await settle(api, lambda: healthy(api, "web", v2))
    await settle(api, lambda: selector(api, "web-stable") == v2 and len(istio_routes(api)) == 1)
    assert istio_routes(api)[0]["weights"] == {"web-stable": 100}
    # The old stable stays up for its scale-down delay, so that an undo is instant.
    assert replicasets(api, "web") == {v1: 4, v2: 4}

    # undo within that delay is fast-tracked: v1 takes all traffic back in one plan, no steps.
    await command(client, "web", "undo")
    await settle(api, lambda: healthy(api, "web", v1) and selector(api, "web-stable") == v1)
    assert status(api, "web")["lastCompletion"]["result"] == "fastTracked"
    assert istio_routes(api) == [{"name": "primary", "match": None, "weights": {"web-stable": 100}, "mirror": None}]
    assert replicasets(api, "web")[v1] == 4
    assert check_all_custom(api, shared_crds, "virtualservices") >= 3


async def test_istio_canary_abort_takes_all_traffic_back_at_once(
    api: ApiServer, client: AsyncClient, running: tuple[ControllerThread, ReadinessDriver]
) -> None:
    await virtual_service(client)
    steps = [{"setHeaderRoute": {"name": "testers", "match": TESTERS}}, {"setWeight": 50}, {"pause": {}}]
    doc = spec(canary(steps, ISTIO))
    v1 = revision_of(doc)
    await create(client, "web", doc)
    await settle(api, lambda: healthy(api, "web", v1))
    doc2 = await set_image(client, "web", doc, "example/app:2.0")
    v2 = revision_of(doc2)
    await settle(api, lambda: step(api, "web") == 2 and len(istio_routes(api)) == 2)
    assert replicasets(api, "web") == {v1: 4, v2: 2}

    await command(client, "web", "abort")
    await settle(api, lambda: status(api, "web").get("phase") == "Aborted")
    await settle(api, lambda: replicasets(api, "web") == {v1: 4, v2: 0})
    assert istio_routes(api) == [{"name": "primary", "match": None, "weights": {"web-stable": 100}, "mirror": None}]
    assert (selector(api, "web-stable"), selector(api, "web-canary")) == (v1, v1)


async def test_istio_shadow_mirrors_then_switches(
    api: ApiServer, client: AsyncClient, running: tuple[ControllerThread, ReadinessDriver]
) -> None:
    await virtual_service(client)
    strategy = {
        "shadow": {
            "mirrorPercent": 50,
            "duration": "1h",
            "stableService": "web-stable",
            "canaryService": "web-canary",
            "trafficRouting": ISTIO,
        }
    }
    doc = spec(strategy)
    v1 = revision_of(doc)
    await create(client, "web", doc)
    await settle(api, lambda: healthy(api, "web", v1))
    doc2 = await set_image(client, "web", doc, "example/app:2.0")
    v2 = revision_of(doc2)
    await settle(api, lambda: status(api, "web").get("stage") == "mirroring")
    await settle(api, lambda: istio_routes(api)[0]["mirror"] is not None)
    # ceil(4 x 50%) shadow replicas; users all on stable, half the requests copied to the shadow.
    assert replicasets(api, "web") == {v1: 4, v2: 2}
    assert istio_routes(api) == [
        {
            "name": "primary",
            "match": None,
            "weights": {"web-stable": 100},
            "mirror": ("web-canary", 50),
        }
    ]
    await command(client, "web", "promote")  # ends the shadow phase now
    await settle(api, lambda: healthy(api, "web", v2))
    await settle(api, lambda: istio_routes(api)[0]["mirror"] is None and selector(api, "web-stable") == v2)
    assert istio_routes(api)[0]["weights"] == {"web-stable": 100}
    assert replicasets(api, "web")[v2] == 4


async def test_istio_ab_test_routes_variants_by_match_and_aborts_to_control(
    api: ApiServer, client: AsyncClient, running: tuple[ControllerThread, ReadinessDriver]
) -> None:
    await virtual_service(client)
    strategy = {
        "abTest": {
            "variants": [
                {"name": "a", "role": "control", "match": [{"headers": [{"name": "x-variant", "exact": "a"}]}]},
                {"name": "b", "role": "candidate", "match": [{"headers": [{"name": "x-variant", "exact": "b"}]}]},
            ],
            "duration": "1h",
            "stableService": "web-stable",
            "canaryService": "web-canary",
            "trafficRouting": ISTIO,
        }
    }
    doc = spec(strategy)
    v1 = revision_of(doc)
    await create(client, "web", doc)
    await settle(api, lambda: healthy(api, "web", v1))
    doc2 = await set_image(client, "web", doc, "example/app:2.0")
    v2 = revision_of(doc2)
    await settle(api, lambda: status(api, "web").get("stage") == "experiment" and len(istio_routes(api)) == 3)
    assert replicasets(api, "web") == {v1: 4, v2: 4}
    routes = istio_routes(api)
    # Control rules first, then the candidate's, then the weighted route.
    assert [r["weights"] for r in routes] == [{"web-stable": 100}, {"web-canary": 100}, {"web-stable": 100}]
    assert routes[0]["match"] == [{"headers": {"x-variant": {"exact": "a"}}}]
    assert routes[1]["match"] == [{"headers": {"x-variant": {"exact": "b"}}}]

    await command(client, "web", "abort")
    await settle(api, lambda: status(api, "web").get("phase") == "Aborted" and len(istio_routes(api)) == 1)
    await settle(api, lambda: replicasets(api, "web") == {v1: 4, v2: 0})
    assert istio_routes(api)[0]["weights"] == {"web-stable": 100}


async def test_a_missing_virtual_service_pauses_the_rollout_until_resumed(
    api: ApiServer, client: AsyncClient, running: tuple[ControllerThread, ReadinessDriver]
) -> None:
    steps = [{"setWeight": 25}, {"pause": {}}]
    doc = spec(canary(steps, ISTIO))
    await create(client, "web", doc)

    def router_paused() -> bool:
        s = status(api, "web")
        conditions = {c["type"]: c for c in s.get("conditions") or []}
        routed = conditions.get("TrafficRouted") or {}
        return s.get("phase") == "Paused" and routed.get("status") == "False"

    await settle(api, router_paused)
    held = status(api, "web")
    assert "VirtualService" in held["message"]
    # Held by the controller, and saying so: not a pause a user asked for.
    assert [c["reason"] for c in held.get("pauseConditions") or []] == ["RouterFailed"], held
    assert "paused by a user" not in held["message"] and held.get("lastCommand") is None, held
    warnings = [e for e in events(api, "web") if e[1] == "RouterFailed"]
    assert len(warnings) == 1 and warnings[0][0] == "Warning"

    await virtual_service(client)
    await command(client, "web", "resume")
    v1 = revision_of(doc)
    await settle(api, lambda: healthy(api, "web", v1))
    conditions = {c["type"] for c in status(api, "web").get("conditions") or []}
    assert "TrafficRouted" not in conditions
    assert istio_routes(api)[0]["weights"] == {"web-stable": 100}


async def test_gateway_api_canary_weights(
    api: ApiServer, client: AsyncClient, running: tuple[ControllerThread, ReadinessDriver], shared_crds: Path
) -> None:
    await client.create(
        HTTPRoute.from_dict(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": "web", "namespace": NS},
                "spec": {
                    "parentRefs": [{"name": "gw"}],
                    "rules": [
                        {
                            "backendRefs": [
                                {"name": "web-stable", "port": 80, "weight": 100},
                                {"name": "web-canary", "port": 80, "weight": 0},
                            ]
                        }
                    ],
                },
            }
        )
    )
    steps = [{"setWeight": 20}, {"pause": {}}, {"setHeaderRoute": {"name": "testers", "match": TESTERS}}, {"pause": {}}]
    doc = spec(canary(steps, {"gatewayAPI": {"httpRoute": "web"}}), replicas=5)
    v1 = revision_of(doc)
    await create(client, "web", doc)
    await settle(api, lambda: healthy(api, "web", v1))
    doc2 = await set_image(client, "web", doc, "example/app:2.0")
    v2 = revision_of(doc2)

    default = [{"path": {"type": "PathPrefix", "value": "/"}}]  # the CRD's default match

    def rules() -> list[dict[str, Any]]:
        route = api.get_object("gateway.networking.k8s.io/v1", "HTTPRoute", NS, "web")
        assert route is not None
        return [
            {"matches": r.get("matches"), "weights": {b["name"]: b.get("weight", 1) for b in r["backendRefs"]}}
            for r in route["spec"]["rules"]
        ]

    await settle(api, lambda: step(api, "web") == 1 and weights(api, "web") == {v1: 80, v2: 20})
    assert replicasets(api, "web") == {v1: 5, v2: 1}
    assert rules() == [{"matches": default, "weights": {"web-stable": 80, "web-canary": 20}}]

    await command(client, "web", "promote")
    await settle(api, lambda: step(api, "web") == 3 and len(rules()) == 2)
    header_rule = next(r for r in rules() if r["matches"] and r["matches"][0].get("headers"))
    assert header_rule["weights"] == {"web-canary": 100}
    assert header_rule["matches"][0]["headers"] == [{"name": "x-canary", "type": "Exact", "value": "always"}]

    await command(client, "web", "promote")
    await settle(api, lambda: healthy(api, "web", v2) and len(rules()) == 1)
    await settle(api, lambda: rules() == [{"matches": default, "weights": {"web-stable": 100}}])
    assert selector(api, "web-stable") == v2
    assert check_all_custom(api, shared_crds, "httproutes") >= 3


async def test_nginx_canary_ingress(
    api: ApiServer, client: AsyncClient, running: tuple[ControllerThread, ReadinessDriver]
) -> None:
    ingress: dict[str, Any] = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {
                    "host": "web.example.com",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "web-stable", "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ],
        },
    }
    await client.create(Ingress.from_dict(copy.deepcopy(ingress)))
    steps = [{"setWeight": 30}, {"pause": {}}, {"setWeight": 60}, {"pause": {}}]
    doc = spec(canary(steps, {"nginx": {"ingress": "web"}}))
    v1 = revision_of(doc)
    await create(client, "web", doc)
    await settle(api, lambda: healthy(api, "web", v1))
    doc2 = await set_image(client, "web", doc, "example/app:2.0")
    v2 = revision_of(doc2)

    def canary_ingress() -> dict[str, Any] | None:
        found = [
            i
            for i in _ingresses(api)
            if (i["metadata"].get("annotations") or {}).get("nginx.ingress.kubernetes.io/canary") == "true"
        ]
        return found[0] if found else None

    def canary_weight() -> str | None:
        c = canary_ingress()
        return None if c is None else c["metadata"]["annotations"].get("nginx.ingress.kubernetes.io/canary-weight")

    await settle(api, lambda: step(api, "web") == 1 and canary_weight() == "30")
    assert replicasets(api, "web") == {v1: 4, v2: 2}
    c = canary_ingress()
    assert c is not None
    backend = c["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "web-canary"
    stable_ingress = api.get_object("networking.k8s.io/v1", "Ingress", NS, "web")
    assert stable_ingress is not None and stable_ingress["spec"] == ingress["spec"]  # the user's, untouched

    await command(client, "web", "promote")
    await settle(api, lambda: step(api, "web") == 3 and canary_weight() == "60")
    assert replicasets(api, "web") == {v1: 4, v2: 3}

    await command(client, "web", "promote")
    await settle(api, lambda: healthy(api, "web", v2))
    await settle(api, lambda: canary_weight() in (None, "0") and selector(api, "web-stable") == v2)
    for obj in _ingresses(api):
        check_builtin({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", **obj})


def _ingresses(api: ApiServer) -> list[dict[str, Any]]:
    from tests.kube.controller_harness import objects

    return list(objects(api, "networking.k8s.io/v1", "Ingress"))


DestinationRule = create_namespaced_resource("networking.istio.io", "v1", "DestinationRule", "destinationrules")
SUBSETS = {
    "istio": {
        "virtualService": {"name": "web", "routes": ["primary"]},
        "destinationRule": {"name": "web", "stableSubsetName": "stable", "canarySubsetName": "canary"},
    }
}


async def subsets_and_virtual_service(client: AsyncClient) -> None:
    await client.create(
        DestinationRule.from_dict(
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "DestinationRule",
                "metadata": {"name": "web", "namespace": NS},
                "spec": {
                    "host": "web",
                    "trafficPolicy": {"loadBalancer": {"simple": "LEAST_REQUEST"}},
                    "subsets": [
                        {"name": "stable", "labels": {"app": "web"}},
                        {"name": "canary", "labels": {"app": "web"}},
                    ],
                },
            }
        )
    )
    await client.create(
        VirtualService.from_dict(
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": {"name": "web", "namespace": NS},
                "spec": {
                    "hosts": ["web"],
                    "http": [
                        {
                            "name": "primary",
                            "timeout": "5s",
                            "route": [{"destination": {"host": "web", "subset": "stable"}, "weight": 100}],
                        }
                    ],
                },
            }
        )
    )


def subset_routes(api: ApiServer) -> list[tuple[str | None, Any, dict[str, int]]]:
    """[(name, match, {subset: weight})] of the VirtualService's routes (every destination the host
    `web`, checked here)."""
    vs = api.get_object("networking.istio.io/v1", "VirtualService", NS, "web")
    assert vs is not None
    out = []
    for r in vs["spec"]["http"]:
        entries = r.get("route") or []
        assert all(e["destination"]["host"] == "web" for e in entries), entries
        out.append((r.get("name"), r.get("match"), {e["destination"]["subset"]: e.get("weight", 100) for e in entries}))
    return out


def subset_revisions(api: ApiServer) -> dict[str, str | None]:
    dr = api.get_object("networking.istio.io/v1", "DestinationRule", NS, "web")
    assert dr is not None
    assert dr["spec"]["trafficPolicy"] == {"loadBalancer": {"simple": "LEAST_REQUEST"}}  # the user's, kept
    out = {}
    for s in dr["spec"]["subsets"]:
        labels = dict(s["labels"])
        assert labels.pop("app") == "web"
        out[s["name"]] = labels.pop("rollwise.dev/revision", None)
        assert not labels
    return out


async def test_istio_subsets_without_services_route_by_role(
    api: ApiServer, client: AsyncClient, shared_crds: Path
) -> None:
    """With a destinationRule and no stable/canary Services, the revisions are addressed by subset:
    the controller gives the router their roles, and routes revisions no Service selects."""
    await subsets_and_virtual_service(client)
    steps = [
        {"setWeight": 25},
        {"pause": {}},
        {"setHeaderRoute": {"name": "testers", "match": TESTERS}},
        {"setWeight": 50},
        {"pause": {}},
    ]
    doc = spec({"canary": {"trafficRouting": SUBSETS, "steps": steps}})
    v1 = revision_of(doc)
    async with controller_running(api, client):
        await create(client, "web", doc)
        await settle(api, lambda: healthy(api, "web", v1) and subset_revisions(api)["stable"] == v1)
        assert subset_routes(api) == [("primary", None, {"stable": 100})]

        doc2 = await set_image(client, "web", doc, "example/app:2.0")
        v2 = revision_of(doc2)
        await settle(api, lambda: step(api, "web") == 1 and weights(api, "web") == {v1: 75, v2: 25})
        await settle(api, lambda: subset_routes(api) == [("primary", None, {"stable": 75, "canary": 25})])
        assert subset_revisions(api) == {"stable": v1, "canary": v2}
        assert replicasets(api, "web") == {v1: 4, v2: 1}
        assert "wait" not in (status(api, "web").get("message") or "")

        await command(client, "web", "promote")
        await settle(api, lambda: step(api, "web") == 4 and len(subset_routes(api)) == 2)
        assert subset_routes(api) == [
            ("rollwise-testers", [{"headers": {"x-canary": {"exact": "always"}}}], {"canary": 100}),
            ("primary", None, {"stable": 50, "canary": 50}),
        ]

        await command(client, "web", "promote")
        await settle(
            api, lambda: healthy(api, "web", v2) and subset_routes(api) == [("primary", None, {"stable": 100})]
        )
        assert subset_revisions(api)["stable"] == v2

        # A third revision aborted: all traffic back to the stable subset at once.
        doc3 = await set_image(client, "web", doc, "example/app:3.0")
        v3 = revision_of(doc3)
        await settle(api, lambda: step(api, "web") == 1 and subset_revisions(api)["canary"] == v3)
        await command(client, "web", "abort")
        await settle(api, lambda: status(api, "web").get("phase") == "Aborted")
        await settle(api, lambda: subset_routes(api) == [("primary", None, {"stable": 100})])
        assert subset_revisions(api)["stable"] == v2
        await settle(api, lambda: replicasets(api, "web")[v3] == 0)
    assert not [e for e in events(api, "web") if e[1] == "RouterFailed"]
    assert check_all_custom(api, shared_crds, "destinationrules") >= 3
    assert check_all_custom(api, shared_crds, "virtualservices") >= 4
