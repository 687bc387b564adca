"""Routers behind one protocol (see base.py); `router_for` picks the one a Rollout names."""

from __future__ import annotations

from lightkube import AsyncClient

from rollwise.platforms.kubernetes.routers.base import (
    Backends,
    ObservedMatch,
    ObservedMirror,
    ObservedRoutes,
    Router,
    RouterError,
    verify_routes,
)
from rollwise.spec.rollout import Rollout

__all__ = [
    "Backends",
    "ObservedMatch",
    "ObservedMirror",
    "ObservedRoutes",
    "Router",
    "RouterError",
    "router_for",
    "verify_routes",
]


def router_for(rollout: Rollout, client: AsyncClient, field_manager: str) -> Router | None:
    """The router of the Rollout's strategy, bound to its namespace; None when the strategy has no
    `trafficRouting` (the split then follows replica counts behind one Service)."""
    strategy = rollout.spec.strategy
    holder = strategy.canary or strategy.shadow or strategy.ab_test
    routing = holder.traffic_routing if holder is not None else None
    if holder is None or routing is None:
        return None
    namespace = rollout.metadata.namespace or "default"
    stable, canary = holder.stable_service, holder.canary_service
    if routing.istio is not None:
        from rollwise.platforms.kubernetes.routers.istio import IstioRouter

        return IstioRouter(client, namespace, routing.istio, field_manager, stable, canary)
    if routing.gateway_api is not None:
        from rollwise.platforms.kubernetes.routers.gateway_api import GatewayAPIRouter

        return GatewayAPIRouter(client, namespace, routing.gateway_api, field_manager, stable, canary)
    if routing.nginx is not None:
        from rollwise.platforms.kubernetes.routers.nginx import NginxRouter

        if not stable or not canary:
            raise RouterError(
                f"rollout {rollout.metadata.name}: the nginx router needs stableService and canaryService"
            )
        return NginxRouter(client, namespace, routing.nginx, field_manager, stable, canary, rollout)
    raise RouterError(
        f"rollout {rollout.metadata.name}: trafficRouting.local is the local platform's proxy; "
        "on Kubernetes use istio, gatewayAPI or nginx"
    )
