"""Istio: edits the user's VirtualService (and, with a destinationRule, the subsets' revision labels
of the user's DestinationRule).

On each managed HTTP route Rollwise owns `route` (one destination per revision, with its weight)
and the mirrors that point at the rollout's own backends (`mirror` + `mirrorPercentage`, or
entries of `mirrors`). Match and matched-mirror
routes are copies of a managed route (so they keep its timeout, retries, rewrite...) named
`rollwise-<name>`, whose matches are the managed route's matches each combined with the table's,
inserted just before the first managed route. Everything else is the user's and is left alone."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

from lightkube import AsyncClient
from lightkube.generic_resource import create_namespaced_resource

from rollwise.engine.plan import MirrorRoute, RouteTable
from rollwise.platforms.kubernetes.routers import objects
from rollwise.platforms.kubernetes.routers.base import (
    Backends,
    ObservedMatch,
    ObservedMirror,
    ObservedRoutes,
    Role,
    RouterError,
    match_key,
)
from rollwise.platforms.kubernetes.routers.capabilities import require
from rollwise.platforms.kubernetes.routers.cookies import cookie_regex, parse_cookie_regex
from rollwise.spec.match import RouteMatch, StringMatch
from rollwise.spec.traffic import ROUTER_CAPABILITIES, Capability, IstioRouting

VirtualService = create_namespaced_resource("networking.istio.io", "v1", "VirtualService", "virtualservices")
DestinationRule = create_namespaced_resource("networking.istio.io", "v1", "DestinationRule", "destinationrules")

PREFIX = "rollwise-"
_SINGLE_MIRROR = ("mirror", "mirrorPercentage", "mirrorPercent", "mirror_percent")
REVISION_LABEL = "rollwise.dev/revision"
Obj = dict[str, Any]


class IstioRouter:
    kind: ClassVar[str] = "istio"
    capabilities: ClassVar[frozenset[Capability]] = ROUTER_CAPABILITIES["istio"]

    def __init__(
        self,
        client: AsyncClient,
        namespace: str,
        routing: IstioRouting,
        field_manager: str,
        stable_service: str | None = None,
        canary_service: str | None = None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.routing = routing
        self.field_manager = field_manager
        self.own_services = {s for s in (stable_service, canary_service) if s}
        self.service_roles: dict[str, Role] = {}
        if stable_service:
            self.service_roles[stable_service] = "stable"
        if canary_service:
            self.service_roles[canary_service] = "canary"
        dr = routing.destination_rule
        self.subsets: dict[str, Role] = (
            {dr.stable_subset_name: "stable", dr.canary_subset_name: "canary"} if dr is not None else {}
        )
        # What the API server answered to the last `apply` (see `applied`).
        self._applied: tuple[Obj | None, Obj] | None = None

    # --- apply ------------------------------------------------------------------------------------

    def _with_roles(self, backends: Backends) -> Backends:
        """Roles the controller did not give, from the Services: the revision behind
        stableService is the stable one."""
        roles = dict(backends.roles)
        for revision, service in backends.services.items():
            if revision not in roles and service in self.service_roles:
                roles[revision] = self.service_roles[service]
        return dataclasses.replace(backends, roles=roles)

    async def apply(self, table: RouteTable, backends: Backends) -> None:
        require(self.kind, self.capabilities, table)
        backends = self._with_roles(backends)
        host = None
        dr: Obj | None = None
        if self.routing.destination_rule is not None:
            dr = await objects.update(
                self.client,
                DestinationRule,
                self.routing.destination_rule.name,
                self.namespace,
                "DestinationRule",
                lambda obj: self._label_subsets(obj, backends),
                self.field_manager,
            )
            host = dr.get("spec", {}).get("host")
        vs = await objects.update(
            self.client,
            VirtualService,
            self.routing.virtual_service.name,
            self.namespace,
            "VirtualService",
            lambda obj: self._route(obj, table, backends, host),
            self.field_manager,
        )
        self._applied = (dr, vs)

    def _label_subsets(self, obj: Obj, backends: Backends) -> Obj:
        subsets = obj.get("spec", {}).get("subsets") or []
        for name, role in self.subsets.items():
            subset = next((s for s in subsets if s.get("name") == name), None)
            if subset is None:
                raise RouterError(f"DestinationRule {self.namespace}/{obj['metadata']['name']} has no subset {name}")
            revision = backends.revision_in(role)
            if revision is not None:
                subset.setdefault("labels", {})[REVISION_LABEL] = revision
        return obj

    def route(self, obj: Obj, table: RouteTable, backends: Backends, host: str | None = None) -> Obj:
        """`obj` (a VirtualService as read) changed to route as `table` says; `host` is the
        DestinationRule's host when subsets are used. Pure: no I/O."""
        return self._route(obj, table, self._with_roles(backends), host)

    def _route(self, obj: Obj, table: RouteTable, backends: Backends, host: str | None) -> Obj:
        spec = obj.setdefault("spec", {})
        routes = [r for r in spec.get("http") or [] if not _is_ours(r)]
        managed = self._managed(routes)
        for i in managed:
            r = routes[i]
            for bad in ("redirect", "directResponse", "delegate"):
                if bad in r:
                    raise RouterError(f"managed route {_label(r, i)} has {bad}; it must forward to destinations")
            base = _first_destination(r)
            if table.weights:
                r["route"] = self._destinations(r.get("route") or [], table.weights, backends, base, host)
            self._set_mirrors(r, [m for m in table.mirrors if not m.matches], backends, base, host)
        added: list[Obj] = []
        for match in table.matches:
            for i in managed:
                r = copy.deepcopy(routes[i])
                r["name"] = _route_name(match.name, routes[i], len(managed))
                r["match"] = _cross(routes[i].get("match"), match.matches)
                dest = self._destination(match.revision, backends, _first_destination(routes[i]), host)
                r["route"] = [{"destination": dest}]
                self._set_mirrors(r, [], backends, None, host)
                added.append(r)
        for mirror in (m for m in table.mirrors if m.matches):
            for i in managed:
                r = copy.deepcopy(routes[i])
                r["name"] = _route_name(mirror.name, routes[i], len(managed))
                r["match"] = _cross(routes[i].get("match"), mirror.matches)
                self._set_mirrors(r, [mirror], backends, _first_destination(routes[i]), host)
                added.append(r)
        names = [r["name"] for r in added]
        if len(set(names)) != len(names):
            raise RouterError(f"two routes of the table share a name: {sorted(names)}")
        first = min(managed)
        spec["http"] = routes[:first] + added + routes[first:]
        return obj

    def _managed(self, routes: list[Obj]) -> list[int]:
        wanted = self.routing.virtual_service.routes
        vs = f"VirtualService {self.namespace}/{self.routing.virtual_service.name}"
        if wanted:
            by_name = {r.get("name"): i for i, r in enumerate(routes)}
            missing = [n for n in wanted if n not in by_name]
            if missing:
                raise RouterError(f"{vs} has no HTTP route named {', '.join(missing)}")
            return sorted(by_name[n] for n in wanted)
        if len(routes) != 1:
            raise RouterError(
                f"{vs} has {len(routes)} HTTP routes of its own: name the managed ones in virtualService.routes"
            )
        return [0]

    def _destination(self, revision: str, backends: Backends, base: Obj | None, host: str | None) -> Obj:
        port = backends.port
        if port is None and base is not None:
            port = (base.get("port") or {}).get("number")
        if self.subsets:
            role = backends.roles.get(revision)
            if role is None:
                raise RouterError(f"revision {revision} has no stable/canary role, so no DestinationRule subset")
            subset = next(name for name, r in self.subsets.items() if r == role)
            # The route's own spelling of the host when it names the DestinationRule's host.
            base_host = (base or {}).get("host")
            if base_host is None or (host is not None and not self._same_host(base_host, host)):
                base_host = host
            dest: Obj = {"host": base_host, "subset": subset}
        else:
            dest = {"host": backends.service_of(revision)}
        if port is not None:
            dest["port"] = {"number": port}
        return dest

    def _destinations(
        self, existing: list[Obj], weights: Any, backends: Backends, base: Obj | None, host: str | None
    ) -> list[Obj]:
        out: list[Obj] = []
        for revision, weight in weights.items():
            dest = self._destination(revision, backends, base, host)
            entry = next((e for e in out if _same(e.get("destination"), dest)), None)
            if entry is not None:
                entry["weight"] += weight
                continue
            old = next((e for e in existing if _same(e.get("destination"), dest)), None)
            entry = copy.deepcopy(old) if old is not None else {}
            entry["destination"] = dest
            entry["weight"] = weight
            out.append(entry)
        return out

    def _set_mirrors(
        self, route: Obj, mirrors: list[MirrorRoute], backends: Backends, base: Obj | None, host: str | None
    ) -> None:
        """Rollwise's mirrors on `route`: one alone as `mirror` + `mirrorPercentage` (every Istio
        release has them); beside the user's `mirrors` entries, or several, as `mirrors` entries
        (Istio 1.19 and later). Istio refuses both forms on one route."""
        if "mirror" in route and self._is_own(route["mirror"], host):
            for key in _SINGLE_MIRROR:
                route.pop(key, None)
        keep = [m for m in route.get("mirrors") or [] if not self._is_own(m.get("destination") or {}, host)]
        ours = [
            {
                "destination": self._destination(m.revision, backends, base, host),
                "percentage": {"value": float(m.percent)},
            }
            for m in mirrors
        ]
        if ours and "mirror" in route:
            raise RouterError(
                f"route {route.get('name', '')} already mirrors to {route['mirror'].get('host')} with `mirror`, "
                "which takes one destination; list it under `mirrors` so that Rollwise can add its own"
            )
        route.pop("mirrors", None)
        if len(ours) == 1 and not keep:
            route["mirror"] = ours[0]["destination"]
            route["mirrorPercentage"] = ours[0]["percentage"]
        elif keep or ours:
            route["mirrors"] = keep + ours

    def _own_mirrors(self, route: Obj, host: str | None) -> list[Obj]:
        """Rollwise's mirrors on `route` in the `mirrors` entry shape, from either form."""
        out = [m for m in route.get("mirrors") or [] if self._is_own(m.get("destination") or {}, host)]
        single = route.get("mirror")
        if isinstance(single, dict) and self._is_own(single, host):
            percentage = route.get("mirrorPercentage")
            if percentage is None and route.get("mirrorPercent") is not None:
                percentage = {"value": route["mirrorPercent"]}  # the deprecated integer form
            out.append({"destination": single, "percentage": percentage})
        return out

    def _same_host(self, a: str, b: str | None) -> bool:
        return b is not None and _short_host(a, self.namespace) == _short_host(b, self.namespace)

    def _is_own(self, dest: Obj, host: str | None) -> bool:
        if self.subsets:
            return self._same_host(dest.get("host", ""), host) and dest.get("subset") in self.subsets
        return _short_host(dest.get("host", ""), self.namespace) in self.own_services

    # --- observe ----------------------------------------------------------------------------------

    def applied(self, backends: Backends) -> ObservedRoutes | None:
        if self._applied is None:
            return None
        dr, vs = self._applied
        return self.translate(vs, dr, backends)

    async def observe(self, backends: Backends) -> ObservedRoutes:
        dr = None
        if self.routing.destination_rule is not None:
            dr = await objects.read(
                self.client, DestinationRule, self.routing.destination_rule.name, self.namespace, "DestinationRule"
            )
        vs = await objects.read(
            self.client, VirtualService, self.routing.virtual_service.name, self.namespace, "VirtualService"
        )
        return self.translate(vs, dr, backends)

    def translate(self, vs: Obj, dr: Obj | None, backends: Backends) -> ObservedRoutes:
        """The VirtualService (and DestinationRule) as read, in Service terms."""
        backends = self._with_roles(backends)
        problems: list[str] = []
        host = None
        subset_revision: dict[str, str] = {}
        if dr is not None:
            host = dr.get("spec", {}).get("host")
            for s in dr.get("spec", {}).get("subsets") or []:
                if s.get("name") in self.subsets:
                    subset_revision[s["name"]] = (s.get("labels") or {}).get(REVISION_LABEL, "")
            for name, role in self.subsets.items():
                want = backends.revision_in(role)
                got = subset_revision.get(name)
                if want is not None and got != want:
                    problems.append(f"DestinationRule subset {name} selects revision {got or 'none'}, expected {want}")
        http = vs.get("spec", {}).get("http") or []
        routes = [r for r in http if not _is_ours(r)]
        managed = [routes[i] for i in self._managed(routes)]

        def name_of(dest: Obj) -> str:
            if self._is_own(dest, host) and self.subsets:
                subset = dest["subset"]
                revision = backends.revision_in(self.subsets[subset])
                return backends.name_of(revision) if revision is not None else f"{host}/{subset}"
            short = _short_host(dest.get("host", ""), self.namespace)
            return short + (f"/{dest['subset']}" if dest.get("subset") else "")

        splits = [_weights(r, name_of) for r in managed]
        if any(s != splits[0] for s in splits[1:]):
            problems.append(f"managed routes split differently: {splits}")
        first = managed[0] if managed else {}
        own_mirrors = [[(name_of(m["destination"]), _percent(m)) for m in self._own_mirrors(r, host)] for r in managed]
        if any(m != own_mirrors[0] for m in own_mirrors[1:]):
            problems.append(f"managed routes mirror differently: {own_mirrors}")
        copies = [r for r in http if _is_ours(r)]
        if len(managed) > 1:
            # One copy per managed route, consecutively: the first managed route's stand for all.
            if len(copies) % len(managed):
                problems.append(f"{len(copies)} Rollwise routes for {len(managed)} managed routes")
            copies = copies[:: len(managed)]
        base_matches = first.get("match") or []
        matches: list[ObservedMatch] = []
        mirrors = [ObservedMirror(svc, pct, ()) for svc, pct in (own_mirrors[0] if own_mirrors else [])]
        for r in copies:
            own = self._own_mirrors(r, host)
            found = _uncross(r.get("match") or [], base_matches)
            if own:
                mirrors += [ObservedMirror(name_of(m["destination"]), _percent(m), found) for m in own]
            else:
                split = _weights(r, name_of)
                target = next(iter(split)) if len(split) == 1 else f"a split {split}"
                matches.append(ObservedMatch(target, found))
        return ObservedRoutes(
            weights=splits[0] if splits else {},
            matches=tuple(matches),
            mirrors=tuple(mirrors),
            problems=tuple(problems),
        )


# --- pure helpers -----------------------------------------------------------------------------------


def _is_ours(route: Obj) -> bool:
    return str(route.get("name", "")).startswith(PREFIX)


def _route_name(name: str, managed: Obj, count: int) -> str:
    # One copy per managed route; the managed route's name tells them apart when there are several.
    return f"{PREFIX}{name}" if count == 1 else f"{PREFIX}{name}--{managed.get('name', '')}"


def _label(route: Obj, index: int) -> str:
    return str(route.get("name") or f"#{index}")


def _first_destination(route: Obj) -> Obj | None:
    entries = route.get("route") or []
    dest = entries[0].get("destination") if entries else None
    return dest if isinstance(dest, dict) else None


def _same(a: Obj | None, b: Obj) -> bool:
    return a is not None and a.get("host") == b.get("host") and a.get("subset") == b.get("subset")


def _short_host(host: str, namespace: str) -> str:
    for suffix in (f".{namespace}.svc.cluster.local", f".{namespace}.svc", f".{namespace}"):
        if host.endswith(suffix):
            return host[: -len(suffix)]
    return host


def _weights(route: Obj, name: Callable[[Obj], str]) -> dict[str, int]:
    entries = route.get("route") or []
    out: dict[str, int] = {}
    for e in entries:
        w = e.get("weight", 100 if len(entries) == 1 else 0)
        n = name(e.get("destination") or {})
        out[n] = out.get(n, 0) + int(w)
    return {n: w for n, w in out.items() if w > 0}


def _percent(mirror: Obj) -> int:
    value = (mirror.get("percentage") or {}).get("value")
    return 100 if value is None else round(float(value))


def _cross(base: list[Obj] | None, ours: tuple[RouteMatch, ...]) -> list[Obj]:
    """Each of the managed route's matches combined with each of ours: the copy must only catch
    requests the managed route would have caught."""
    out = []
    for b in base or [{}]:
        for m in ours:
            nm = copy.deepcopy(b)
            headers: Obj = dict(nm.get("headers") or {})
            query: Obj = dict(nm.get("queryParams") or {})
            for kind, cond in m.conditions():
                if kind == "query":
                    key, target, value = cond.name, query, {cond.kind: cond.value}
                elif kind == "header":
                    key, target, value = cond.name.lower(), headers, {cond.kind: cond.value}
                else:
                    key, target, value = "cookie", headers, {"regex": cookie_regex(cond)}
                if key in target:
                    raise RouterError(
                        f"cannot add a condition on {kind} {cond.name}: the same match already has one on "
                        f"{'query parameter' if kind == 'query' else 'header'} {key} (Istio keeps one per name)"
                    )
                target[key] = value
            if headers:
                nm["headers"] = headers
            if query:
                nm["queryParams"] = query
            out.append(nm)
    return out


def _uncross(found: list[Obj], base: list[Obj]) -> tuple[RouteMatch, ...]:
    """The table's matches back from a copy's matches: each condition the managed route's own
    matches do not have, as a RouteMatch; duplicates (one per managed match) collapse."""
    seen: dict[object, RouteMatch] = {}
    for m in found:
        headers, cookies, query = [], [], []
        for key, value in (m.get("headers") or {}).items():
            if any((b.get("headers") or {}).get(key) == value for b in base):
                continue
            if key == "cookie" and "regex" in value and (c := parse_cookie_regex(value["regex"])) is not None:
                cookies.append(c)
            else:
                headers.append(_string_match(key, value))
        for key, value in (m.get("queryParams") or {}).items():
            if not any((b.get("queryParams") or {}).get(key) == value for b in base):
                query.append(_string_match(key, value))
        rm = RouteMatch(headers=headers or None, cookies=cookies or None, query_params=query or None)
        seen.setdefault(match_key((rm,)), rm)
    return tuple(seen.values())


def _string_match(name: str, value: Obj) -> StringMatch:
    for kind in ("exact", "prefix", "regex"):
        if kind in value:
            return StringMatch.model_validate({"name": name, kind: str(value[kind])})
    return StringMatch(name=name, regex=".*")
