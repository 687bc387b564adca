"""The engine's route table as the proxies' tables: one for the rollout's main listener and, for
blue-green and A/B, one for its preview listener.

Upstreams are the ready replicas seen when the table is pushed, which may be fewer than the engine
saw when it planned (a replica crashed in between). The proxy refuses a weight on a revision with
no upstream, so such weight moves here to the revision with the most weight that can serve, as the
engine's own guard would; the reconcile this crash triggers then plans properly."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rollwise.engine import RouteTable as EngineRoutes
from rollwise.platforms.local.proxy.routes import Condition, Match, MatchRoute, Mirror, RouteTable
from rollwise.spec.match import RouteMatch, StringMatch
from rollwise.spec.strategies.shadow import ShadowCompare

HOST = "127.0.0.1"
NOTHING = RouteTable(upstreams={}, weights={})


@dataclass(frozen=True)
class Translation:
    main: RouteTable
    preview: RouteTable
    notes: tuple[str, ...] = ()


def translate(
    routes: EngineRoutes,
    ready: Mapping[str, Sequence[int]],
    *,
    preview_revision: str | None = None,
    sticky_cookie: str | None = None,
    compare: ShadowCompare | None = None,
) -> Translation:
    """`ready`: ports of ready replicas per revision. `preview_revision`: what the preview listener
    serves (blue-green's preview, an A/B candidate); without one it serves what the main one does.
    `sticky_cookie`: the canary's local stickyCookie (an A/B test's stickyBy comes with `routes`)."""
    upstreams = {rev: [(HOST, p) for p in ports] for rev, ports in ready.items() if ports}
    notes: list[str] = []
    weights = _weights(routes.weights, upstreams, notes)
    matches = tuple(
        MatchRoute(revision=m.revision, matches=tuple(_match(x) for x in m.matches))
        for m in routes.matches
        if m.revision in upstreams
    )
    mirror = None
    mirrors = [m for m in routes.mirrors if m.revision in upstreams and m.percent > 0]
    if len(mirrors) > 1:
        # The proxy mirrors to one revision; the engine asks for more only with several named
        # setMirrorRoute steps, and every copy goes to the same canary anyway.
        notes.append(f"the local proxy keeps one mirror route: {mirrors[0].name!r}, not {mirrors[1].name!r}")
    if mirrors:
        m = mirrors[0]
        mirror = Mirror(
            revision=m.revision,
            percent=m.percent,
            matches=tuple(_match(x) for x in m.matches),
            compare_headers=tuple(h.lower() for h in (compare.headers or [])) if compare else ("content-type",),
            ignore_paths=tuple(compare.ignore_body_paths or []) if compare else (),
        )
    sticky = sticky_cookie
    if routes.sticky_by is not None:
        # A header as the sticky key is refused when the rollout is applied: the proxy keeps
        # users on a variant with a cookie only.
        sticky = routes.sticky_by.cookie or sticky
    if not weights:
        main = NOTHING
    else:
        main = RouteTable(upstreams=upstreams, weights=weights, routes=matches, mirror=mirror, sticky_cookie=sticky)
    if preview_revision is None:
        preview = RouteTable(upstreams=upstreams, weights=weights) if weights else NOTHING
    elif preview_revision in upstreams:
        preview = RouteTable(upstreams={preview_revision: upstreams[preview_revision]}, weights={preview_revision: 100})
    else:
        preview = NOTHING
    return Translation(main, preview, tuple(notes))


def _weights(wanted: Mapping[str, int], upstreams: Mapping[str, object], notes: list[str]) -> dict[str, int]:
    weights = {rev: w for rev, w in wanted.items() if w > 0}
    orphaned = {rev: w for rev, w in weights.items() if rev not in upstreams}
    if not orphaned:
        return weights
    serving = {rev: w for rev, w in weights.items() if rev in upstreams}
    if not serving:
        notes.append(f"no ready replica of {', '.join(sorted(orphaned))}: nothing can serve")
        return {}
    heir = max(serving, key=lambda rev: (serving[rev], rev))
    serving[heir] += sum(orphaned.values())
    notes.append(f"no ready replica of {', '.join(sorted(orphaned))}: its weight goes to {heir}")
    return serving


def _match(m: RouteMatch) -> Match:
    return Match(
        headers=_conditions(m.headers),
        cookies=_conditions(m.cookies),
        query=_conditions(m.query_params),
    )


def _conditions(items: list[StringMatch] | None) -> tuple[Condition, ...]:
    return tuple(Condition(name=c.name, kind=c.kind, value=c.value) for c in items or [])
