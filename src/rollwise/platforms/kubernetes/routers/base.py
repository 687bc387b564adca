"""What every router does, whatever object it edits: write the engine's route table into a
mesh/ingress object, read the object back, and say where it differs.

A router never trusts its own memory: the controller calls `apply`, then `observe`, then
`verify_routes`; any difference is an error event and the rollout pauses (no silent no-op)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from rollwise.engine.plan import RouteTable
from rollwise.spec.match import RouteMatch
from rollwise.spec.traffic import Capability


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

    def service_of(self, revision: str) -> str:
        try:
            return self.services[revision]
        except KeyError:
            raise RouterError(f"no Service selects revision {revision}") from None


@dataclass(frozen=True)
class ObservedMatch:
    service: str
    matches: tuple[RouteMatch, ...]


@dataclass(frozen=True)
class ObservedMirror:
    service: str
    percent: int


@dataclass(frozen=True)
class ObservedRoutes:
    """What the router's object says now, in Service terms (weights sum to 100 when present)."""

    weights: Mapping[str, int]
    matches: tuple[ObservedMatch, ...] = ()
    mirrors: tuple[ObservedMirror, ...] = ()
    notes: tuple[str, ...] = field(default=())


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


def expected_routes(table: RouteTable, backends: Backends) -> ObservedRoutes:
    """The route table in Service terms, as a verified object must read."""
    weights: dict[str, int] = {}
    for rev, w in table.weights.items():
        if w > 0:
            svc = backends.service_of(rev)
            weights[svc] = weights.get(svc, 0) + w
    return ObservedRoutes(
        weights=weights,
        matches=tuple(ObservedMatch(backends.service_of(m.revision), m.matches) for m in table.matches),
        mirrors=tuple(ObservedMirror(backends.service_of(m.revision), m.percent) for m in table.mirrors),
    )


def verify_routes(table: RouteTable, backends: Backends, observed: ObservedRoutes) -> list[str]:
    """Differences between what the table asks and what the object reads, one line each; empty
    when they agree. Weights of 0 and absent backends are the same thing."""
    want = expected_routes(table, backends)
    problems: list[str] = []
    got_w = {s: w for s, w in observed.weights.items() if w > 0}
    if dict(want.weights) != got_w:
        problems.append(f"weights read back as {_fmt(got_w)}, expected {_fmt(want.weights)}")
    if sorted(m.service for m in want.matches) != sorted(m.service for m in observed.matches):
        problems.append(
            "match routes read back to "
            f"{sorted(m.service for m in observed.matches)}, expected {sorted(m.service for m in want.matches)}"
        )
    got_m = sorted((m.service, m.percent) for m in observed.mirrors)
    want_m = sorted((m.service, m.percent) for m in want.mirrors)
    if got_m != want_m:
        problems.append(f"mirrors read back as {got_m}, expected {want_m}")
    return problems


def _fmt(weights: Mapping[str, int]) -> str:
    return "{" + ", ".join(f"{s}: {w}" for s, w in sorted(weights.items())) + "}" if weights else "{}"
