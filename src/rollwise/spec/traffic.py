"""Where traffic is shifted: Istio, Gateway API, NGINX Ingress or Rollwise's own local proxy.

Every router declares what it can do (`ROUTER_CAPABILITIES`) so that a step a router cannot carry
out is a lint error naming the routers that can, never a silent no-op."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rollwise.spec.common import DnsSubdomain, Spec

Capability = Literal[
    "weight",
    "headerExact",
    "headerPrefix",
    "headerRegex",
    "cookieExact",
    "cookiePrefix",
    "cookieRegex",
    "queryExact",
    "queryPrefix",
    "queryRegex",
    "multipleMatches",
    "mirror",
    "mirrorCompare",
    "stickyWeight",
    "matchToStable",
]

ALL: frozenset[Capability] = frozenset(Capability.__args__)  # type: ignore[attr-defined]

ROUTER_CAPABILITIES: dict[str, frozenset[Capability]] = {
    # Istio matches headers, query params and (through the cookie header) cookies by exact, prefix
    # or regex, and mirrors a percentage. Per-request weights cannot keep a user on one variant, and
    # Envoy drops mirrored replies, so they cannot be compared.
    "istio": ALL - {"stickyWeight", "mirrorCompare"},
    # Gateway API core/extended matches: header and query by Exact or RegularExpression only;
    # a cookie is a RegularExpression on the Cookie header; RequestMirror carries a percent.
    "gatewayAPI": ALL - {"stickyWeight", "mirrorCompare", "headerPrefix", "queryPrefix", "cookiePrefix"},
    # ingress-nginx canary annotations: one header (exact value or pattern) or one cookie whose
    # value is "always", plus a weight. No query matching, no mirroring with a percent. The
    # annotations sit on the canary Ingress, so matched requests can only go to the canary Service
    # (an A/B control cannot have match rules: `matchToStable`).
    "nginx": frozenset({"weight", "headerExact", "headerRegex", "cookieExact"}),
    "local": ALL,
}

ROUTER_KEYS = ("istio", "gateway_api", "nginx", "local")


class IstioVirtualService(Spec):
    name: DnsSubdomain
    routes: list[str] | None = Field(
        default=None, description="Named HTTP routes to manage; empty means the only route."
    )


class IstioDestinationRule(Spec):
    name: DnsSubdomain
    canary_subset_name: str = Field(default="canary", alias="canarySubsetName")
    stable_subset_name: str = Field(default="stable", alias="stableSubsetName")


class IstioRouting(Spec):
    virtual_service: IstioVirtualService = Field(alias="virtualService")
    destination_rule: IstioDestinationRule | None = Field(default=None, alias="destinationRule")


class GatewayAPIRouting(Spec):
    http_route: DnsSubdomain = Field(alias="httpRoute")
    namespace: DnsSubdomain | None = Field(default=None, description="Default: the Rollout's namespace.")


class NginxRouting(Spec):
    ingress: DnsSubdomain = Field(description="The stable Ingress; Rollwise writes a canary Ingress beside it.")
    annotation_prefix: str = Field(default="nginx.ingress.kubernetes.io", alias="annotationPrefix")
    additional_ingress_annotations: dict[str, str] | None = Field(
        default=None,
        alias="additionalIngressAnnotations",
        description="Extra canary annotations by short name (canary-by-header-value), prefixed with annotationPrefix.",
    )


class LocalRouting(Spec):
    """Rollwise's own proxy on the local platform."""

    sticky_cookie: str | None = Field(
        default=None,
        alias="stickyCookie",
        description="Canary weights only: a cookie keeping a user on the revision first chosen for them. "
        "A/B tests use abTest.stickyBy instead.",
    )


class TrafficRouting(Spec):
    exactly_one_of = ROUTER_KEYS

    istio: IstioRouting | None = None
    gateway_api: GatewayAPIRouting | None = Field(default=None, alias="gatewayAPI")
    nginx: NginxRouting | None = None
    local: LocalRouting | None = None

    @property
    def router(self) -> str:
        for key in ROUTER_KEYS:
            if getattr(self, key) is not None:
                return type(self).model_fields[key].alias or key
        raise AssertionError("validated TrafficRouting has a router")

    def can(self, capability: Capability) -> bool:
        return capability in ROUTER_CAPABILITIES[self.router]


def routers_that_can(capability: Capability) -> list[str]:
    return [name for name, caps in ROUTER_CAPABILITIES.items() if capability in caps]
