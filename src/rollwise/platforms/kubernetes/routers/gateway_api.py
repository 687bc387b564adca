"""Gateway API: edits the user's HTTPRoute.

The managed rules are the user's rules whose backendRefs name the stable or canary Service (or the
only rule). On them Rollwise owns `backendRefs` (one per Service, with its weight) and the
RequestMirror filters that point at those Services. Match and matched-mirror routes are copies of a
managed rule (keeping its filters and timeouts) named `rollwise-<name>`, whose matches are the
managed rule's matches each combined with the table's: Gateway API ranks a rule with more header
matches above one with fewer on the same path, so the copy wins exactly for the requests it adds
conditions to. The user's other rules, filters and fields are left alone."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from lightkube import ApiError, AsyncClient
from lightkube.generic_resource import create_namespaced_resource

from rollwise.engine.plan import MirrorRoute, RouteTable
from rollwise.platforms.kubernetes.routers import objects
from rollwise.platforms.kubernetes.routers.base import (
    Backends,
    ObservedMatch,
    ObservedMirror,
    ObservedRoutes,
    RouterError,
    match_key,
)
from rollwise.platforms.kubernetes.routers.capabilities import require
from rollwise.platforms.kubernetes.routers.cookies import cookie_regex, parse_cookie_regex
from rollwise.spec.match import RouteMatch, StringMatch
from rollwise.spec.traffic import ROUTER_CAPABILITIES, Capability, GatewayAPIRouting

HTTPRoute = create_namespaced_resource("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes")

PREFIX = "rollwise-"
MAX_RULES = 16
MAX_MATCHES = 64
Obj = dict[str, Any]
_TYPES = {"exact": "Exact", "regex": "RegularExpression"}


class GatewayAPIRouter:
    kind: ClassVar[str] = "gatewayAPI"
    capabilities: ClassVar[frozenset[Capability]] = ROUTER_CAPABILITIES["gatewayAPI"]

    def __init__(
        self,
        client: AsyncClient,
        namespace: str,
        routing: GatewayAPIRouting,
        field_manager: str,
        stable_service: str | None = None,
        canary_service: str | None = None,
    ) -> None:
        self.client = client
        self.namespace = routing.namespace or namespace
        # Services live beside the Rollout; an HTTPRoute elsewhere names their namespace (and the
        # user grants it with a ReferenceGrant).
        self.service_namespace = None if self.namespace == namespace else namespace
        self.routing = routing
        self.field_manager = field_manager
        self.own_services = {s for s in (stable_service, canary_service) if s}
        self._inserted = (0, 0)  # where the last write put its copies: (index, count)
        self._applied: Obj | None = None  # what the API server answered to the last `apply`

    # --- apply ------------------------------------------------------------------------------------

    async def apply(self, table: RouteTable, backends: Backends) -> None:
        require(self.kind, self.capabilities, table)
        stored = await objects.update(
            self.client,
            HTTPRoute,
            self.routing.http_route,
            self.namespace,
            "HTTPRoute",
            lambda obj: self._route(obj, table, backends),
            self.field_manager,
        )
        first, count = self._inserted
        rules = stored.get("spec", {}).get("rules") or []
        if count and not any(_is_ours(r) for r in rules):
            await self._take_back(stored, first, count)
        self._applied = stored

    async def _take_back(self, stored: Obj, first: int, count: int) -> None:
        """The server dropped `rules[].name` (an HTTPRoute CRD older than Gateway API v1.4's
        standard channel): the copies just written could never be told from the user's rules
        again, so they are removed at once, by position, from the version just written."""
        where = f"HTTPRoute {self.namespace}/{self.routing.http_route}"
        why = (
            f"{where}: the cluster's HTTPRoute schema has no rules[].name (Gateway API v1.4 standard "
            "channel, or v1.2 experimental, has it), which match routes and matched mirrors need"
        )
        rules = stored["spec"]["rules"]
        if any("name" in r for r in rules[first : first + count]):
            raise RouterError(why)
        stored["spec"]["rules"] = rules[:first] + rules[first + count :]
        stored.get("metadata", {}).pop("managedFields", None)
        try:
            await self.client.replace(HTTPRoute.from_dict(stored), field_manager=self.field_manager)
        except ApiError as e:
            raise RouterError(f"{why}; removing the unnamed copies failed ({e.status.message}): remove them") from None
        raise RouterError(why)

    def _services(self, backends: Backends) -> set[str]:
        return self.own_services | set(backends.services.values())

    def route(self, obj: Obj, table: RouteTable, backends: Backends) -> Obj:
        """`obj` (an HTTPRoute as read) changed to route as `table` says. Pure: no I/O."""
        return self._route(obj, table, backends)

    def _route(self, obj: Obj, table: RouteTable, backends: Backends) -> Obj:
        spec = obj.setdefault("spec", {})
        rules = [r for r in spec.get("rules") or [] if not _is_ours(r)]
        services = self._services(backends)
        managed = self._managed(rules, services)
        for i in managed:
            r = rules[i]
            port = self._port(r, backends)
            if table.weights:
                r["backendRefs"] = _backend_refs(r.get("backendRefs") or [], table.weights, backends, port)
            _set_mirrors(r, [m for m in table.mirrors if not m.matches], backends, port, services)
        added: list[Obj] = []
        for match in table.matches:
            for i in managed:
                r = copy.deepcopy(rules[i])
                r["name"] = _rule_name(match.name, rules[i], i, len(managed))
                r["matches"] = _cross(rules[i].get("matches"), match.matches)
                port = self._port(rules[i], backends)
                r["backendRefs"] = [_ref(backends.service_of(match.revision), port, 100)]
                _set_mirrors(r, [], backends, port, services)
                added.append(r)
        for mirror in (m for m in table.mirrors if m.matches):
            for i in managed:
                r = copy.deepcopy(rules[i])
                r["name"] = _rule_name(mirror.name, rules[i], i, len(managed))
                r["matches"] = _cross(rules[i].get("matches"), mirror.matches)
                _set_mirrors(r, [mirror], backends, self._port(rules[i], backends), services)
                added.append(r)
        names = [r["name"] for r in added]
        if len(set(names)) != len(names):
            raise RouterError(f"two routes of the table share the rule name {sorted(names)}")
        taken = {r.get("name") for r in rules}
        if taken & set(names):
            raise RouterError(f"the HTTPRoute already has rules named {sorted(taken & set(names))}")
        out = rules[: min(managed)] + added + rules[min(managed) :]
        self._inserted = (min(managed), len(added))
        if len(out) > MAX_RULES:
            raise RouterError(f"the HTTPRoute would have {len(out)} rules; Gateway API allows {MAX_RULES}")
        spec["rules"] = out
        return obj

    def _managed(self, rules: list[Obj], services: set[str]) -> list[int]:
        managed = [
            i for i, r in enumerate(rules) if any(_service_ref(b) in services for b in r.get("backendRefs") or [])
        ]
        if managed:
            return managed
        if len(rules) == 1:
            return [0]
        raise RouterError(
            f"HTTPRoute {self.namespace}/{self.routing.http_route} has {len(rules)} rules and none sends to "
            f"{' or '.join(sorted(services)) or 'the stable Service'}: point the rule to manage at the stable Service"
        )

    def _port(self, rule: Obj, backends: Backends) -> _At:
        if backends.port is not None:
            return _At(backends.port, self.service_namespace)
        for ref in rule.get("backendRefs") or []:
            if ref.get("port") is not None:
                return _At(int(ref["port"]), self.service_namespace)
        raise RouterError(
            f"HTTPRoute {self.namespace}/{self.routing.http_route}: a Service backendRef needs a port, "
            "and the managed rule names none"
        )

    # --- observe ----------------------------------------------------------------------------------

    async def observe(self, backends: Backends) -> ObservedRoutes:
        route = await objects.read(self.client, HTTPRoute, self.routing.http_route, self.namespace, "HTTPRoute")
        return self.translate(route, backends)

    def applied(self, backends: Backends) -> ObservedRoutes | None:
        return None if self._applied is None else self.translate(self._applied, backends)

    def translate(self, route: Obj, backends: Backends) -> ObservedRoutes:
        """The HTTPRoute as read, in Service terms."""
        all_rules = route.get("spec", {}).get("rules") or []
        rules = [r for r in all_rules if not _is_ours(r)]
        services = self._services(backends)
        managed = [rules[i] for i in self._managed(rules, services)]
        problems: list[str] = []
        splits = [_weights(r) for r in managed]
        if any(s != splits[0] for s in splits[1:]):
            problems.append(f"managed rules split differently: {splits}")
        first = managed[0] if managed else {}
        own_mirrors = [_mirrors(r, services) for r in managed]
        if any(m != own_mirrors[0] for m in own_mirrors[1:]):
            problems.append(f"managed rules mirror differently: {own_mirrors}")
        copies, problem = _copies_of_first([r for r in all_rules if _is_ours(r)], len(managed))
        problems += problem
        base = first.get("matches") or []
        matches: list[ObservedMatch] = []
        mirrors = [ObservedMirror(svc, pct, ()) for svc, pct in (own_mirrors[0] if own_mirrors else [])]
        for r in copies:
            found = _uncross(r.get("matches") or [], base)
            own = _mirrors(r, services)
            if own:
                mirrors += [ObservedMirror(svc, pct, found) for svc, pct in own]
            else:
                split = _weights(r)
                target = next(iter(split)) if len(split) == 1 else f"a split {split}"
                matches.append(ObservedMatch(target, found))
        return ObservedRoutes(
            weights=splits[0] if splits else {},
            matches=tuple(matches),
            mirrors=tuple(mirrors),
            problems=tuple(problems),
        )


# --- pure helpers -----------------------------------------------------------------------------------


def _copies_of_first(ours: list[Obj], managed: int) -> tuple[list[Obj], list[str]]:
    """Rollwise writes one copy per managed rule, consecutively, for each route of the table: the
    copies of the first managed rule stand for the table's routes."""
    if managed <= 1:
        return ours, []
    problems = [] if len(ours) % managed == 0 else [f"{len(ours)} Rollwise rules for {managed} managed rules"]
    return ours[::managed], problems


def _is_ours(rule: Obj) -> bool:
    return str(rule.get("name", "")).startswith(PREFIX)


def _rule_name(name: str, managed: Obj, index: int, count: int) -> str:
    """A valid rule name (a DNS subdomain) for the table's route `name`, one per managed rule."""
    base = re.sub(r"[^a-z0-9.-]+", "-", name.lower()).strip("-.") or "route"
    if count > 1:
        base += "-" + (managed.get("name") or f"rule{index}")
    return (PREFIX + base)[:253].rstrip("-.")


def _service_ref(ref: Obj) -> str | None:
    if ref.get("group", "") in ("", "core") and ref.get("kind", "Service") == "Service":
        return str(ref.get("name"))
    return None


@dataclass(frozen=True)
class _At:
    """Where a backendRef points besides the Service's name."""

    port: int
    namespace: str | None


def _ref(service: str, at: _At, weight: int | None) -> Obj:
    # group and kind as the server defaults them, so that an unchanged rule compares equal to the
    # stored one and costs no write.
    out: Obj = {"group": "", "kind": "Service", "name": service}
    if at.namespace is not None:
        out["namespace"] = at.namespace
    out["port"] = at.port
    if weight is not None:
        out["weight"] = weight
    return out


def _backend_refs(existing: list[Obj], weights: Mapping[str, int], backends: Backends, port: _At) -> list[Obj]:
    out: list[Obj] = []
    for revision, weight in weights.items():
        service = backends.service_of(revision)
        entry = next((e for e in out if e["name"] == service), None)
        if entry is not None:
            entry["weight"] += weight
            continue
        old = next((e for e in existing if _service_ref(e) == service), None)
        # Keep a ref's own fields (its filters) when the Service stays.
        entry = copy.deepcopy(old) if old is not None else {}
        entry.update(_ref(service, port, weight))
        out.append(entry)
    return out


def _is_own_mirror(f: Obj, services: set[str]) -> bool:
    ref = (f.get("requestMirror") or {}).get("backendRef") or {}
    return f.get("type") == "RequestMirror" and _service_ref(ref) in services


def _set_mirrors(rule: Obj, mirrors: list[MirrorRoute], backends: Backends, port: _At, services: set[str]) -> None:
    keep = [f for f in rule.get("filters") or [] if not _is_own_mirror(f, services)]
    ours = [
        {
            "type": "RequestMirror",
            "requestMirror": {"backendRef": _ref(backends.service_of(m.revision), port, None), "percent": m.percent},
        }
        for m in mirrors
    ]
    if keep or ours:
        rule["filters"] = keep + ours
    else:
        rule.pop("filters", None)


def _mirrors(rule: Obj, services: set[str]) -> list[tuple[str, int]]:
    out = []
    for f in rule.get("filters") or []:
        if _is_own_mirror(f, services):
            mirror = f["requestMirror"]
            if "percent" in mirror:
                pct = int(mirror["percent"])
            elif "fraction" in mirror:
                frac = mirror["fraction"]
                pct = round(100 * int(frac["numerator"]) / int(frac.get("denominator", 100)))
            else:
                pct = 100
            out.append((str(mirror["backendRef"]["name"]), pct))
    return out


def _weights(rule: Obj) -> dict[str, int]:
    refs = rule.get("backendRefs") or []
    raw: dict[str, int] = {}
    for ref in refs:
        name = _service_ref(ref) or f"{ref.get('kind')}/{ref.get('name')}"
        raw[name] = raw.get(name, 0) + int(ref.get("weight", 1))
    total = sum(raw.values())
    if total == 0:
        return {}
    # Weights are proportions; Rollwise writes them summing to 100, others may not.
    return {n: round(100 * w / total) for n, w in raw.items() if w > 0}


def _cross(base: list[Obj] | None, ours: tuple[RouteMatch, ...]) -> list[Obj]:
    out = []
    for b in base or [{"path": {"type": "PathPrefix", "value": "/"}}]:
        for m in ours:
            nm = copy.deepcopy(b)
            headers = list(nm.get("headers") or [])
            query = list(nm.get("queryParams") or [])
            for kind, cond in m.conditions():
                if kind == "query":
                    target, name, entry = query, cond.name, _typed(cond)
                elif kind == "header":
                    target, name, entry = headers, cond.name, _typed(cond)
                else:
                    target, name = headers, "Cookie"
                    entry = {"type": "RegularExpression", "name": name, "value": cookie_regex(cond)}
                if any(e["name"].lower() == name.lower() for e in target):
                    raise RouterError(
                        f"cannot add a condition on {kind} {cond.name}: the same match already has one on "
                        f"{name} (Gateway API considers only the first)"
                    )
                target.append(entry)
            if headers:
                nm["headers"] = headers
            if query:
                nm["queryParams"] = query
            out.append(nm)
    if len(out) > MAX_MATCHES:
        raise RouterError(f"a rule would have {len(out)} matches; Gateway API allows {MAX_MATCHES}")
    return out


def _typed(cond: StringMatch) -> Obj:
    if cond.kind not in _TYPES:
        raise RouterError(f"Gateway API has no {cond.kind} match (condition on {cond.name}); only exact and regex")
    return {"type": _TYPES[cond.kind], "name": cond.name, "value": cond.value}


def _uncross(found: list[Obj], base: list[Obj]) -> tuple[RouteMatch, ...]:
    def in_base(key: str, entry: Obj) -> bool:
        return any(_norm(e) == _norm(entry) for b in base for e in b.get(key) or [])

    seen: dict[object, RouteMatch] = {}
    for m in found:
        headers, cookies, query = [], [], []
        for e in m.get("headers") or []:
            if in_base("headers", e):
                continue
            c = parse_cookie_regex(e["value"]) if e["name"].lower() == "cookie" and _type(e) != "Exact" else None
            if c is not None:
                cookies.append(c)
            else:
                headers.append(_string_match(e))
        for e in m.get("queryParams") or []:
            if not in_base("queryParams", e):
                query.append(_string_match(e))
        rm = RouteMatch(headers=headers or None, cookies=cookies or None, query_params=query or None)
        seen.setdefault(match_key((rm,)), rm)
    return tuple(seen.values())


def _type(e: Obj) -> str:
    return str(e.get("type", "Exact"))


def _norm(e: Obj) -> tuple[str, str, str]:
    return (str(e["name"]).lower(), _type(e), str(e["value"]))


def _string_match(e: Obj) -> StringMatch:
    kind = "exact" if _type(e) == "Exact" else "regex"
    return StringMatch.model_validate({"name": e["name"], kind: str(e["value"])})
