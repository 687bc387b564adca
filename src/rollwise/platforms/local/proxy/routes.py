"""The route table: what the proxy is told to do, as plain data.

The local platform translates the engine's plan into a `RouteTable` and hands it to the proxy,
which checks it (`problems`), compiles it (`table.compile_table`) and swaps it in whole. A bad table
is refused with every problem listed and the old one keeps serving: a half-applied route is worse
than none (Argo Rollouts' history of weights that do not sum to 100 is the warning).

The JSON form (`to_dict`/`from_dict`) is what the admin endpoint accepts, camelCase like the spec."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from rollwise.platforms.local.proxy.jsonpath import JsonPathError, parse_path

Address = tuple[str, int]
Kind = Literal["exact", "prefix", "regex"]
KINDS: tuple[Kind, ...] = get_args(Kind)

# RFC 6265 cookie-name = token (RFC 7230 tchar).
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class RouteTableError(ValueError):
    """A route table that cannot be served; `problems` lists every reason, not only the first."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid route table: " + "; ".join(self.problems))


@dataclass(frozen=True)
class Condition:
    """One condition on a header, cookie or query parameter (names of headers are case-insensitive,
    values are compared as written). A regex is searched, not anchored: write ^...$ for a full match."""

    name: str
    kind: Kind
    value: str


@dataclass(frozen=True)
class Match:
    """All conditions of one match must hold (AND)."""

    headers: tuple[Condition, ...] = ()
    cookies: tuple[Condition, ...] = ()
    query: tuple[Condition, ...] = ()

    def conditions(self) -> tuple[Condition, ...]:
        return self.headers + self.cookies + self.query


@dataclass(frozen=True)
class MatchRoute:
    """Requests meeting any one of `matches` (OR) go to `revision`, before weights are consulted."""

    revision: str
    matches: tuple[Match, ...]


@dataclass(frozen=True)
class Mirror:
    """Copies `percent` of requests (of those meeting `matches`, when given) to `revision`, and
    compares its answers with the primary's: status, `compare_headers`, and the body with the JSON
    paths in `ignore_paths` removed (e.g. `$.timestamp`, `$.items[*].id`)."""

    revision: str
    percent: int
    matches: tuple[Match, ...] = ()
    compare_headers: tuple[str, ...] = ("content-type",)
    ignore_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class RouteTable:
    """upstreams: revision -> ready replicas; weights: revision -> integer percent, summing to 100,
    or empty (with no routes) when nothing can serve, which answers 503; routes: ordered, the first
    route whose matches hold wins; sticky_cookie: when set, a user keeps the revision first chosen
    for them by weight (the cookie's value names the revision)."""

    upstreams: Mapping[str, Sequence[Address]]
    weights: Mapping[str, int]
    routes: tuple[MatchRoute, ...] = ()
    mirror: Mirror | None = None
    sticky_cookie: str | None = None

    def problems(self) -> list[str]:
        """Every reason this table cannot be served; empty when it can."""
        out: list[str] = []
        for rev, addrs in self.upstreams.items():
            if not isinstance(rev, str) or not rev:
                out.append(f"revision name {rev!r} must be a non-empty string")
            for addr in addrs:
                if not _valid_address(addr):
                    out.append(f"upstream {addr!r} of revision {rev!r} must be (host, port) with 1 <= port <= 65535")

        def has_upstream(rev: str) -> bool:
            return bool(self.upstreams.get(rev))

        total = 0
        for rev, weight in self.weights.items():
            if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
                out.append(f"weight of {rev!r} must be an integer from 0 to 100 (got {weight!r})")
                continue
            total += weight
            if weight > 0 and not has_upstream(rev):
                out.append(f"revision {rev!r} has weight {weight} but no ready upstream")
        # No weights at all is the engine's "nothing can serve" (a recreate's downtime, a stable
        # revision without a ready replica): requests get a 503 that says so. Weights that are
        # given must sum to 100.
        if total != 100 and (self.weights or self.routes):
            out.append(f"weights must sum to 100 (got {total})")

        for i, route in enumerate(self.routes):
            where = f"routes[{i}] (revision {route.revision!r})"
            if not has_upstream(route.revision):
                out.append(f"{where}: revision has no ready upstream")
            out += _match_problems(where, route.matches, required=True)

        if self.mirror is not None:
            m = self.mirror
            if not has_upstream(m.revision):
                out.append(f"mirror: revision {m.revision!r} has no ready upstream")
            if isinstance(m.percent, bool) or not isinstance(m.percent, int) or not 0 <= m.percent <= 100:
                out.append(f"mirror: percent must be an integer from 0 to 100 (got {m.percent!r})")
            out += _match_problems("mirror", m.matches, required=False)
            for path in m.ignore_paths:
                try:
                    parse_path(path)
                except JsonPathError as exc:
                    out.append(f"mirror: ignore path {path!r}: {exc}")
            for name in m.compare_headers:
                if not _TOKEN.match(name):
                    out.append(f"mirror: compare header {name!r} is not a valid header name")

        if self.sticky_cookie is not None and not _TOKEN.match(self.sticky_cookie):
            out.append(f"sticky cookie name {self.sticky_cookie!r} is not a valid cookie name")
        return out

    def check(self) -> None:
        problems = self.problems()
        if problems:
            raise RouteTableError(problems)

    # --- JSON form ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "upstreams": {rev: [f"{h}:{p}" for h, p in addrs] for rev, addrs in self.upstreams.items()},
            "weights": dict(self.weights),
        }
        if self.routes:
            out["routes"] = [
                {"revision": r.revision, "matches": [_match_to_dict(m) for m in r.matches]} for r in self.routes
            ]
        if self.mirror is not None:
            m = self.mirror
            out["mirror"] = {
                "revision": m.revision,
                "percent": m.percent,
                "matches": [_match_to_dict(x) for x in m.matches],
                "compareHeaders": list(m.compare_headers),
                "ignorePaths": list(m.ignore_paths),
            }
        if self.sticky_cookie is not None:
            out["stickyCookie"] = self.sticky_cookie
        return out

    @classmethod
    def from_dict(cls, data: Any) -> RouteTable:
        """Build a table from its JSON form; shape errors raise RouteTableError (the semantic checks
        are `problems`, run by the proxy on swap)."""
        try:
            return _from_dict(data)
        except RouteTableError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise RouteTableError([f"malformed route table: {exc}"]) from exc


def _valid_address(addr: Any) -> bool:
    return (
        isinstance(addr, tuple)
        and len(addr) == 2
        and isinstance(addr[0], str)
        and bool(addr[0])
        and isinstance(addr[1], int)
        and 1 <= addr[1] <= 65535
    )


def _match_problems(where: str, matches: Sequence[Match], *, required: bool) -> list[str]:
    out: list[str] = []
    if required and not matches:
        out.append(f"{where}: needs at least one match")
    for j, match in enumerate(matches):
        conds = match.conditions()
        if not conds:
            out.append(f"{where}.matches[{j}]: a match needs at least one condition")
        for cond in conds:
            if not cond.name:
                out.append(f"{where}.matches[{j}]: a condition needs a name")
            if cond.kind not in KINDS:
                out.append(f"{where}.matches[{j}]: kind {cond.kind!r} is not one of {', '.join(KINDS)}")
            elif cond.kind == "regex":
                try:
                    re.compile(cond.value)
                except re.error as exc:
                    out.append(f"{where}.matches[{j}]: regex {cond.value!r} does not compile: {exc}")
    return out


def _match_to_dict(m: Match) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, conds in (("headers", m.headers), ("cookies", m.cookies), ("queryParams", m.query)):
        if conds:
            out[key] = [{"name": c.name, c.kind: c.value} for c in conds]
    return out


def _parse_address(value: Any) -> Address:
    if isinstance(value, str):
        host, sep, port = value.rpartition(":")
        if not sep:
            raise ValueError(f"upstream {value!r} must be host:port")
        return host.strip("[]"), int(port)
    host, port = value
    return str(host), int(port)


def _conditions(items: Any) -> tuple[Condition, ...]:
    out: list[Condition] = []
    for item in items or ():
        kinds = [k for k in KINDS if k in item]
        if len(kinds) != 1:
            raise RouteTableError([f"condition {item!r} needs exactly one of exact, prefix, regex"])
        out.append(Condition(name=str(item["name"]), kind=kinds[0], value=str(item[kinds[0]])))
    return tuple(out)


def _match_from_dict(data: Mapping[str, Any]) -> Match:
    return Match(
        headers=_conditions(data.get("headers")),
        cookies=_conditions(data.get("cookies")),
        query=_conditions(data.get("queryParams")),
    )


def _from_dict(data: Mapping[str, Any]) -> RouteTable:
    known = {"upstreams", "weights", "routes", "mirror", "stickyCookie"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise RouteTableError([f"unknown field(s): {', '.join(unknown)}"])
    mirror = None
    if data.get("mirror") is not None:
        m = data["mirror"]
        mirror = Mirror(
            revision=str(m["revision"]),
            percent=m["percent"],
            matches=tuple(_match_from_dict(x) for x in m.get("matches") or ()),
            compare_headers=tuple(str(h).lower() for h in m.get("compareHeaders", ("content-type",))),
            ignore_paths=tuple(str(p) for p in m.get("ignorePaths") or ()),
        )
    return RouteTable(
        upstreams={str(rev): [_parse_address(a) for a in addrs] for rev, addrs in data["upstreams"].items()},
        weights=dict(data["weights"]),
        routes=tuple(
            MatchRoute(revision=str(r["revision"]), matches=tuple(_match_from_dict(x) for x in r["matches"]))
            for r in data.get("routes") or ()
        ),
        mirror=mirror,
        sticky_cookie=data.get("stickyCookie"),
    )
