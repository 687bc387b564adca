"""Checks that every traffic operation a strategy asks for can be carried out by its router."""

from __future__ import annotations

import re

import re2

from rollwise.lint.context import Checker
from rollwise.spec.match import RouteMatch
from rollwise.spec.problems import FieldPath
from rollwise.spec.steps import CanaryStep
from rollwise.spec.traffic import ROUTER_CAPABILITIES, Capability, TrafficRouting, routers_that_can

# Routers that address revisions through Kubernetes Services and so need both names.
_NEEDS_SERVICES = {"gatewayAPI", "nginx"}


# Envoy (Istio, most Gateway API implementations) matches with RE2, which has no lookaround or
# backreferences; a pattern Python accepts may still be refused by the mesh.
_RE2_ROUTERS = {"istio", "gatewayAPI"}


def regex_problem(pattern: str, router: str | None) -> str | None:
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"invalid regular expression {pattern!r}: {exc}"
    if router in _RE2_ROUTERS:
        options = re2.Options()
        options.log_errors = False  # the error is reported here, not on stderr
        try:
            re2.compile(pattern, options)
        except re2.error as exc:
            reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
            return f"the {router} router matches with RE2, which rejects {pattern!r}: {_re2_reason(reason)}"
    return None


def _re2_reason(reason: str) -> str:
    """RE2's `invalid perl operator: (?!` as `invalid perl operator '(?!'`, plus why, when the
    construct is one RE2 leaves out on purpose."""
    what, sep, fragment = reason.partition(": ")
    text = f"{what} {fragment!r}" if sep else reason
    if fragment.startswith(("(?=", "(?!", "(?<=", "(?<!")):
        return f"{text} (RE2 has no lookahead or lookbehind)"
    if re.fullmatch(r"\\[1-9][0-9]*", fragment):
        return f"{text} (RE2 has no backreferences)"
    return text


def check_router_fits_workload(c: Checker, routing: TrafficRouting | None, workload: str, path: FieldPath) -> None:
    """A process runs on the local platform, whose only router is `local`; a pod template or a
    workloadRef runs on Kubernetes, where `local` does not exist. `workload` is the spec key used."""
    if routing is None:
        return
    router = routing.router
    if workload == "process" and router != "local":
        c.error(
            (*path, "trafficRouting", router),
            f"a process rollout runs on the local platform, where the only router is local (got {router})",
        )
    if workload != "process" and router == "local":
        kube = ", ".join(r for r in ROUTER_CAPABILITIES if r != "local")
        c.error(
            (*path, "trafficRouting", "local"),
            f"the local router serves process rollouts only; a rollout with a {workload} runs on Kubernetes, "
            f"where the routers are {kube}",
        )


def cannot(router: str, what: str, capability: Capability) -> str:
    return f"the {router} router cannot {what}; routers that can: {', '.join(routers_that_can(capability))}"


_KIND_WORDS = {"header": "headers", "cookie": "cookies", "query": "query parameters"}
_HOW_WORDS = {"exact": "exact value", "prefix": "prefix", "regex": "regular expression"}


def check_matches(
    c: Checker, routing: TrafficRouting | None, matches: list[RouteMatch] | None, path: FieldPath
) -> None:
    for i, match in enumerate(matches or []):
        conditions = match.conditions()
        if not conditions:
            c.error((*path, i), "a match needs at least one header, cookie or query condition (got none)")
        keys = {"header": "headers", "cookie": "cookies", "query": "queryParams"}
        counters: dict[str, int] = {}
        for kind, cond in conditions:
            j = counters.get(kind, 0)
            counters[kind] = j + 1
            where = (*path, i, keys[kind], j)
            if cond.regex is not None:
                problem = regex_problem(cond.regex, routing.router if routing else None)
                if problem:
                    c.error((*where, "regex"), problem)
            if routing is None:
                continue
            capability: Capability = f"{kind}{cond.kind.capitalize()}"  # type: ignore[assignment]
            ways = [how for how in _HOW_WORDS if routing.can(f"{kind}{how.capitalize()}")]  # type: ignore[arg-type]
            if not ways:
                # Nothing of this kind can be matched: say so once, at the list, not per condition.
                if j == 0:
                    exact: Capability = f"{kind}Exact"  # type: ignore[assignment]
                    c.error(
                        (*path, i, keys[kind]),
                        cannot(routing.router, f"match {_KIND_WORDS[kind]} at all", exact),
                    )
                continue
            if not routing.can(capability):
                c.error(
                    (*where, cond.kind),
                    cannot(
                        routing.router,
                        f"match {_KIND_WORDS[kind]} by {_HOW_WORDS[cond.kind]} (only by "
                        f"{' or '.join(_HOW_WORDS[w] for w in ways)})",
                        capability,
                    ),
                )
            if routing.router == "nginx" and kind == "cookie" and cond.exact not in (None, "always"):
                c.error(
                    (*where, "exact"),
                    "the nginx router matches a cookie only by the value 'always' (ingress-nginx "
                    f"canary-by-cookie) (got {cond.exact!r})",
                )
    if routing is not None and not routing.can("multipleMatches"):
        total = sum(len(m.conditions()) for m in matches or [])
        if total > 1:
            c.error(
                path,
                cannot(routing.router, f"combine several match conditions (got {total})", "multipleMatches"),
            )


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
    header_routes: dict[str, int] = {}
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
            route = step.set_header_route
            if route.match:
                header_routes[route.name] = i
            else:
                header_routes.pop(route.name, None)
            if routing is not None and routing.router == "nginx" and len(header_routes) > 1:
                others = ", ".join(repr(n) for n in header_routes if n != route.name)
                c.error(
                    (*here, "setHeaderRoute", "name"),
                    "the nginx router holds one header route at a time (its canary Ingress has one header); "
                    f"remove {others} first (a setHeaderRoute with only its name removes a route)",
                )
            if routing is None:
                c.error(
                    (*here, "setHeaderRoute"),
                    "needs trafficRouting, which is not set (without a router, traffic follows replica counts); "
                    "routers that can: " + ", ".join(routers_that_can("headerExact")),
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
