"""Checks that every traffic operation a strategy asks for can be carried out by its router."""

from __future__ import annotations

import re

from rollwise.lint.context import Checker
from rollwise.spec.match import RouteMatch
from rollwise.spec.problems import FieldPath
from rollwise.spec.steps import CanaryStep
from rollwise.spec.traffic import Capability, TrafficRouting, routers_that_can

# Routers that address revisions through Kubernetes Services and so need both names.
_NEEDS_SERVICES = {"gatewayAPI", "nginx"}


def cannot(router: str, what: str, capability: Capability) -> str:
    return f"the {router} router cannot {what}; routers that can: {', '.join(routers_that_can(capability))}"


def check_matches(
    c: Checker, routing: TrafficRouting | None, matches: list[RouteMatch] | None, path: FieldPath
) -> None:
    for i, match in enumerate(matches or []):
        conditions = match.conditions()
        if not conditions:
            c.error((*path, i), "a match needs at least one header, cookie or query condition")
        keys = {"header": "headers", "cookie": "cookies", "query": "queryParams"}
        counters: dict[str, int] = {}
        for kind, cond in conditions:
            j = counters.get(kind, 0)
            counters[kind] = j + 1
            where = (*path, i, keys[kind], j)
            if cond.regex is not None:
                try:
                    re.compile(cond.regex)
                except re.error as exc:
                    c.error((*where, "regex"), f"invalid regular expression: {exc}")
            if routing is None:
                continue
            capability: Capability = f"{kind}{cond.kind.capitalize()}"  # type: ignore[assignment]
            if not routing.can(capability):
                c.error((*where, cond.kind), cannot(routing.router, f"match a {kind} by {cond.kind}", capability))
            if routing.router == "nginx" and kind == "cookie" and cond.exact != "always":
                c.error(
                    (*where, "exact"),
                    "the nginx router matches a cookie only by the value 'always' (ingress-nginx canary-by-cookie)",
                )
    if routing is not None and not routing.can("multipleMatches"):
        total = sum(len(m.conditions()) for m in matches or [])
        if total > 1:
            c.error(path, cannot(routing.router, "combine several match conditions", "multipleMatches"))


def check_services(
    c: Checker, routing: TrafficRouting | None, stable: str | None, canary: str | None, path: FieldPath
) -> None:
    if stable is not None and stable == canary:
        c.error((*path, "canaryService"), f"must differ from stableService (both are {stable!r})")
    if routing is None:
        return
    router = routing.router
    needs = router in _NEEDS_SERVICES or (
        router == "istio" and routing.istio and routing.istio.destination_rule is None
    )
    if needs:
        for name, value in (("stableService", stable), ("canaryService", canary)):
            if value is None:
                why = "without a destinationRule " if router == "istio" else ""
                c.error((*path, name), f"required: the {router} router {why}routes to revisions through Services")
    elif router == "local":
        for name, value in (("stableService", stable), ("canaryService", canary)):
            if value is not None:
                c.warn((*path, name), "ignored by the local router, which addresses revisions itself")


def check_steps(
    c: Checker,
    routing: TrafficRouting | None,
    steps: list[CanaryStep] | None,
    path: FieldPath,
    *,
    allow_decreasing: bool,
) -> None:
    last_weight: tuple[int, int] | None = None
    for i, step in enumerate(steps or []):
        here = (*path, i)
        if step.set_weight is not None:
            if last_weight is not None and step.set_weight < last_weight[1] and not allow_decreasing:
                c.error(
                    (*here, "setWeight"),
                    f"weight goes down from {last_weight[1]} (step {last_weight[0]}) to {step.set_weight}; "
                    "set allowDecreasingWeights: true if that is intended",
                )
            last_weight = (i, step.set_weight)
        if step.set_canary_scale is not None and routing is None:
            c.error(
                (*here, "setCanaryScale"),
                "needs trafficRouting: without a router, weight follows replica counts",
            )
        if step.set_header_route is not None:
            if routing is None:
                c.error(
                    (*here, "setHeaderRoute"),
                    "needs trafficRouting; routers that can: " + ", ".join(routers_that_can("headerExact")),
                )
            check_matches(c, routing, step.set_header_route.match, (*here, "setHeaderRoute", "match"))
        if step.set_mirror_route is not None:
            if routing is None or not routing.can("mirror"):
                who = (
                    "without trafficRouting, nothing can" if routing is None else f"the {routing.router} router cannot"
                )
                c.error(
                    (*here, "setMirrorRoute"),
                    f"{who} mirror traffic; routers that can: {', '.join(routers_that_can('mirror'))}",
                )
            else:
                check_matches(c, routing, step.set_mirror_route.match, (*here, "setMirrorRoute", "match"))
            if step.set_mirror_route.percent is None and step.set_mirror_route.match:
                c.error(
                    (*here, "setMirrorRoute", "percent"),
                    "required when match is given (without it the route is removed)",
                )
