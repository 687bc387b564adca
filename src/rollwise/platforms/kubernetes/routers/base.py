"""What every router does, whatever object it edits: write the engine's route table into a
mesh/ingress object, read the object back, and say where it differs.

A router never trusts its own memory: the controller calls `apply`, then `observe`, then
`verify_routes`; any difference is an error event and the rollout pauses (no silent no-op)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Protocol

from rollwise.engine.plan import RouteTable
from rollwise.spec.match import RouteMatch
from rollwise.spec.traffic import Capability

Role = Literal["stable", "canary"]


class RouterError(Exception):
    """The router could not do what the plan asked: object missing, write refused, an operation
    it does not support, or a read-back that differs. The message is one line for an event."""


@dataclass(frozen=True)
class Backends:
    """How the controller's Services stand behind the revisions of one Rollout: the Service that
    selects each revision named in the route table (stable/canary/active/preview Services select by
    the `rollwise.dev/revision` label), and the port the router sends to (None: the Service's only
    port, which the router need not name)."""

    services: Mapping[str, str]
    port: int | None = None
    # Which revision holds which role. Istio with a destinationRule addresses revisions by subset
    # (the stable and canary subsets), not by Service: without stableService/canaryService to
    # derive the roles from, it needs them here. The other routers ignore them.
    roles: Mapping[str, Role] = field(default_factory=dict)

    def service_of(self, revision: str) -> str:
        try:
            return self.services[revision]
        except KeyError:
            raise RouterError(f"no Service selects revision {revision}") from None

    def name_of(self, revision: str) -> str:
        """The name routes to `revision` are reported under: its Service, else (subsets without
        Services) its role."""
        if revision in self.services:
            return self.services[revision]
        if revision in self.roles:
            return self.roles[revision]
        raise RouterError(f"no Service selects revision {revision}, and it has no stable/canary role")

    def revision_in(self, role: Role) -> str | None:
        return next((rev for rev, r in self.roles.items() if r == role), None)


@dataclass(frozen=True)
class ObservedMatch:
    service: str
    matches: tuple[RouteMatch, ...]


@dataclass(frozen=True)
class ObservedMirror:
    service: str
    percent: int
    matches: tuple[RouteMatch, ...] = ()


@dataclass(frozen=True)
class ObservedRoutes:
    """What the router's object says now, in Service terms (weights sum to 100 when present).
    `problems` are differences the router found in its own objects that weights and routes cannot
    show (a subset selecting the wrong revision, a stable Ingress no longer routing to the stable
    Service); `verify_routes` reports them."""

    weights: Mapping[str, int]
    matches: tuple[ObservedMatch, ...] = ()
    mirrors: tuple[ObservedMirror, ...] = ()
    notes: tuple[str, ...] = field(default=())
    problems: tuple[str, ...] = field(default=())


class Router(Protocol):
    """One module per router (istio.py, gateway_api.py, nginx.py). An instance is bound to one
    Rollout: its namespace, its `trafficRouting` entry, a lightkube AsyncClient and the field
    manager it applies with."""

    kind: ClassVar[str]  # the trafficRouting key: "istio", "gatewayAPI", "nginx"
    capabilities: ClassVar[frozenset[Capability]]

    async def apply(self, table: RouteTable, backends: Backends) -> None:
        """Make the object route as `table` says. Raises RouterError when it cannot."""
        ...

    async def observe(self, backends: Backends) -> ObservedRoutes:
        """Read the object back from the API server (never from a cache)."""
        ...

    def applied(self, backends: Backends) -> ObservedRoutes | None:
        """What the API server answered to the last `apply` (the stored object of its write, or
        its read when there was nothing to change), in Service terms: the read-back of a reconcile
        without a second read. None when the router has no such answer and `observe` must read."""
        ...


def expected_routes(table: RouteTable, backends: Backends) -> ObservedRoutes:
    """The route table in Service terms, as a verified object must read."""
    weights: dict[str, int] = {}
    for rev, w in table.weights.items():
        if w > 0:
            svc = backends.name_of(rev)
            weights[svc] = weights.get(svc, 0) + w
    return ObservedRoutes(
        weights=weights,
        matches=tuple(ObservedMatch(backends.name_of(m.revision), m.matches) for m in table.matches),
        mirrors=tuple(ObservedMirror(backends.name_of(m.revision), m.percent, m.matches) for m in table.mirrors),
    )


ConditionKey = tuple[str, str, str, str]  # (header|cookie|query, name, exact|prefix|regex, value)


def match_key(matches: tuple[RouteMatch, ...]) -> frozenset[frozenset[ConditionKey]]:
    """A match list as a set of condition sets: order does not matter (the matches of a list are
    alternatives, the conditions of a match all hold), and header names are case-insensitive."""
    out = set()
    for m in matches:
        conds = set()
        for kind, c in m.conditions():
            name = c.name.lower() if kind == "header" else c.name
            value = c.value
            if kind == "cookie" and c.kind == "regex":
                # Mesh routers match the whole cookie value, so outer anchors say nothing more.
                value = value.removeprefix("^")
                value = value[:-1] if value.endswith("$") and not value.endswith("\\$") else value
            conds.add((kind, name, c.kind, value))
        out.add(frozenset(conds))
    return frozenset(out)


def verify_routes(table: RouteTable, backends: Backends, observed: ObservedRoutes) -> list[str]:
    """Differences between what the table asks and what the object reads, one line each; empty
    when they agree. Weights of 0 and absent backends are the same thing. An empty weight table
    (nothing ready to serve) leaves the split as it was, so weights are not compared then."""
    want = expected_routes(table, backends)
    problems: list[str] = list(observed.problems)
    got_w = {s: w for s, w in observed.weights.items() if w > 0}
    if table.weights and dict(want.weights) != got_w:
        problems.append(f"weights read back as {_fmt(got_w)}, expected {_fmt(want.weights)}")
    got_r = sorted((m.service, _fmt_match(m.matches)) for m in observed.matches)
    want_r = sorted((m.service, _fmt_match(m.matches)) for m in want.matches)
    if _multiset(observed.matches) != _multiset(want.matches):
        problems.append(f"match routes read back as {_fmt_list(got_r)}, expected {_fmt_list(want_r)}")
    got_m = sorted((m.service, m.percent, _fmt_match(m.matches)) for m in observed.mirrors)
    want_m = sorted((m.service, m.percent, _fmt_match(m.matches)) for m in want.mirrors)
    if _mirror_set(observed.mirrors) != _mirror_set(want.mirrors):
        problems.append(f"mirrors read back as {_fmt_list(got_m)}, expected {_fmt_list(want_m)}")
    return problems


def _multiset(matches: tuple[ObservedMatch, ...]) -> list[tuple[str, str]]:
    return sorted((m.service, repr(sorted(map(sorted, match_key(m.matches))))) for m in matches)


def _mirror_set(mirrors: tuple[ObservedMirror, ...]) -> list[tuple[str, int, str]]:
    return sorted((m.service, m.percent, repr(sorted(map(sorted, match_key(m.matches))))) for m in mirrors)


def _fmt_match(matches: tuple[RouteMatch, ...]) -> str:
    if not matches:
        return "all requests"
    alts = []
    for conds in sorted(map(sorted, match_key(matches))):
        alts.append(" and ".join(f"{kind} {name} {how} {value!r}" for kind, name, how, value in conds))
    return " or ".join(alts)


def _fmt_list(items: Sequence[tuple[object, ...]]) -> str:
    return "[" + "; ".join(" ".join(str(x) for x in it) for it in items) + "]" if items else "[]"


def _fmt(weights: Mapping[str, int]) -> str:
    return "{" + ", ".join(f"{s}: {w}" for s, w in sorted(weights.items())) + "}" if weights else "{}"
