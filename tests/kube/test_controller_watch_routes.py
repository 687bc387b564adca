"""The objects a Rollout routes through are watched: someone else's edit of a VirtualService's or
an HTTPRoute's weights, or of a Service's selector, wakes the Rollout at once (the resync is an
hour away here) and its reconcile writes the planned routes back; the watch events of the
controller's own writes to them wake nothing. A cluster without the Istio and Gateway API CRDs
runs the controller all the same."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lightkube import AsyncClient
from lightkube.resources.core_v1 import Service
from lightkube.types import PatchType

from rollwise.platforms.kubernetes.names import REVISION_LABEL
from rollwise.testing.kubeapi import ApiServer, rollwise_crds, serve
from tests.kube.controller_harness import (
    NS,
    STABLE_AND_CANARY,
    ControllerThread,
    ReadinessDriver,
    controller_running,
    selector,
    settle,
    weights,
)
from tests.kube.helpers import kubeconfig
from tests.kube.test_controller import create, healthy, revision_of, set_image, spec, step
from tests.kube.test_controller_routers import (
    ISTIO,
    HTTPRoute,
    VirtualService,
    canary,
    istio_routes,
    virtual_service,
)
from tests.kube.test_controller_wakeups import idle, metric, until

pytestmark = pytest.mark.asyncio

HOUR = 3600.0
HELD = [{"setWeight": 25}, {"pause": {}}]


@pytest_asyncio.fixture
async def running(
    api: ApiServer, client: AsyncClient, shared_crds: Path
) -> AsyncIterator[tuple[ControllerThread, ReadinessDriver]]:
    async with controller_running(api, client, STABLE_AND_CANARY, resync_seconds=HOUR) as running:
        yield running


async def held_canary(api: ApiServer, client: AsyncClient, routing: dict[str, Any]) -> tuple[str, str]:
    """A canary held at its pause with 75/25 in force; (stable, canary) revisions."""
    doc = spec(canary(HELD, routing))
    v1 = revision_of(doc)
    await create(client, "web", doc)
    await settle(api, lambda: healthy(api, "web", v1))
    doc2 = await set_image(client, "web", doc, "example/app:2.0")
    v2 = revision_of(doc2)
    await settle(api, lambda: step(api, "web") == 1 and weights(api, "web") == {v1: 75, v2: 25})
    return v1, v2


async def test_a_hand_edit_of_the_virtual_service_is_put_back_and_own_writes_wake_nothing(
    api: ApiServer, client: AsyncClient, running: tuple[ControllerThread, ReadinessDriver]
) -> None:
    controller, _ = running
    await virtual_service(client)
    await held_canary(api, client, ISTIO)
    planned = {"web-stable": 75, "web-canary": 25}
    await settle(api, lambda: istio_routes(api)[0]["weights"] == planned)
    c = controller.controllers[0]
    await until(lambda: idle(c))
    reconciles = metric(c, "rollwise_controller_reconciles_total")
    own = metric(c, "rollwise_controller_own_write_events_total")

    vs = api.get_object("networking.istio.io/v1", "VirtualService", NS, "web")
    assert vs is not None
    http = vs["spec"]["http"]
    http[0]["route"] = [
        {"destination": {"host": "web-stable"}, "weight": 50},
        {"destination": {"host": "web-canary"}, "weight": 50},
    ]
    patch = {"spec": {"http": http}}
    await client.patch(VirtualService, "web", patch, namespace=NS, patch_type=PatchType.MERGE)
    # Put back by the reconcile the edit woke, long before the hour's resync.
    await settle(api, lambda: istio_routes(api)[0]["weights"] == planned, timeout=30)
    # That reconcile's own write of the VirtualService comes back as a watch event too: counted
    # as its own, it wakes nothing more.
    await until(lambda: metric(c, "rollwise_controller_own_write_events_total") >= own + 1 and idle(c), timeout=30)
    assert metric(c, "rollwise_controller_reconciles_total") == reconciles + 1
    assert metric(c, "rollwise_controller_own_write_events_total") == own + 1
    assert c.causes.get("resync", 0) == 0


async def test_a_hand_edit_of_the_http_route_is_put_back(
    api: ApiServer, client: AsyncClient, running: tuple[ControllerThread, ReadinessDriver]
) -> None:
    controller, _ = running
    await client.create(
        HTTPRoute.from_dict(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": "web", "namespace": NS},
                "spec": {
                    "parentRefs": [{"name": "gw"}],
                    "rules": [{"backendRefs": [{"name": "web-stable", "port": 80, "weight": 100}]}],
                },
            }
        )
    )

    def backends() -> dict[str, int]:
        route = api.get_object("gateway.networking.k8s.io/v1", "HTTPRoute", NS, "web")
        assert route is not None
        return {b["name"]: b.get("weight", 1) for b in route["spec"]["rules"][0]["backendRefs"]}

    await held_canary(api, client, {"gatewayAPI": {"httpRoute": "web"}})
    planned = {"web-stable": 75, "web-canary": 25}
    await settle(api, lambda: backends() == planned)
    c = controller.controllers[0]
    await until(lambda: idle(c))
    reconciles = c.reconciles

    edited = {"rules": [{"backendRefs": [{"name": "web-stable", "port": 80, "weight": 100}]}]}
    await client.patch(HTTPRoute, "web", {"spec": edited}, namespace=NS, patch_type=PatchType.MERGE)
    await settle(api, lambda: backends() == planned, timeout=30)
    assert c.reconciles > reconciles
    assert c.causes.get("resync", 0) == 0


async def test_without_istio_and_gateway_api_crds_a_service_selector_edit_is_put_back() -> None:
    # A cluster with neither CRD: the watches of their kinds are not made, the rest works.
    async with serve() as server:
        server.add_crds(rollwise_crds())
        async with (
            AsyncClient(kubeconfig(server), trust_env=False, field_manager="tests") as client,
            controller_running(server, client, STABLE_AND_CANARY, resync_seconds=HOUR) as (controller, _),
        ):
            doc = spec({"canary": {"stableService": "web-stable", "canaryService": "web-canary", "steps": HELD}})
            v1 = revision_of(doc)
            await create(client, "web", doc)
            await settle(server, lambda: healthy(server, "web", v1) and selector(server, "web-stable") == v1)
            c = controller.controllers[0]
            await until(lambda: idle(c))
            reconciles = c.reconciles
            edit = {"spec": {"selector": {REVISION_LABEL: "someone-else"}}}
            await client.patch(Service, "web-stable", edit, namespace=NS, patch_type=PatchType.MERGE)
            await settle(server, lambda: selector(server, "web-stable") == v1, timeout=30)
            assert c.reconciles > reconciles
            assert c.causes.get("resync", 0) == 0
        assert not server.errors, server.errors
