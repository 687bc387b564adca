"""The runtime guard behind lint: what a route table needs from its router, and a RouterError naming
the routers that can when the router at hand cannot."""

from __future__ import annotations

from rollwise.engine.plan import RouteTable
from rollwise.platforms.kubernetes.routers.base import RouterError
from rollwise.spec.match import RouteMatch
from rollwise.spec.traffic import Capability, routers_that_can

_KIND = {"header": "header", "cookie": "cookie", "query": "query"}
_TYPE = {"exact": "Exact", "prefix": "Prefix", "regex": "Regex"}


def needed(table: RouteTable) -> list[tuple[Capability, str]]:
    """Each capability the table needs, with what needs it (for the error message)."""
    out: list[tuple[Capability, str]] = []
    lists: list[tuple[str, tuple[RouteMatch, ...]]] = [(f"match route {m.name}", m.matches) for m in table.matches]
    lists += [(f"mirror route {m.name}", m.matches) for m in table.mirrors]
    for what, matches in lists:
        conditions = [c for m in matches for c in m.conditions()]
        for kind, cond in conditions:
            cap = f"{_KIND[kind]}{_TYPE[cond.kind]}"
            out.append((cap, f"{what} ({kind} {cond.name} by {cond.kind})"))  # type: ignore[arg-type]
        if len(conditions) > 1:
            out.append(("multipleMatches", f"{what} ({len(conditions)} conditions)"))
    for m in table.mirrors:
        out.append(("mirror", f"mirror route {m.name}"))
    split = [w for w in table.weights.values() if 0 < w < 100]
    if table.sticky_by is not None and split:
        out.append(("stickyWeight", "weights that keep each user on one variant (A/B candidate weight)"))
    return out


def require(router: str, capabilities: frozenset[Capability], table: RouteTable) -> None:
    for cap, what in needed(table):
        if cap not in capabilities:
            can = ", ".join(routers_that_can(cap))
            raise RouterError(f"the {router} router cannot do {cap}, needed by {what}; routers that can: {can}")
