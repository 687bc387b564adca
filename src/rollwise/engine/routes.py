"""Weights arithmetic and the route guard every plan passes through: no weight, match or mirror
may point at a revision with no ready replica."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rollwise.engine.outcome import Outcome
from rollwise.engine.work import Ctx, Work


def split(shares: Mapping[str, int], order: Sequence[str]) -> dict[str, int]:
    """Integer percentages proportional to `shares`, summing to exactly 100 (largest remainder;
    ties go to the revision earlier in `order`). Empty when every share is 0."""
    total = sum(v for v in shares.values() if v > 0)
    if total <= 0:
        return {}
    rank = {r: i for i, r in enumerate(order)}
    keys = sorted((r for r, v in shares.items() if v > 0), key=lambda r: (rank.get(r, len(rank)), r))
    floors = {r: shares[r] * 100 // total for r in keys}
    left = 100 - sum(floors.values())
    by_remainder = sorted(keys, key=lambda r: (-(shares[r] * 100 % total), rank.get(r, len(rank)), r))
    for r in by_remainder[:left]:
        floors[r] += 1
    return floors


def follow_ready(ctx: Ctx, planned: Mapping[str, int], order: Sequence[str]) -> dict[str, int]:
    """Without a router traffic reaches replicas evenly, so each revision's weight is its share of
    the ready replicas that the plan keeps (what a Service does: a replica told to stop leaves its
    endpoints at once)."""
    return split({r: min(ctx.ready(r), c) for r, c in planned.items()}, order)


def two_way(stable: str, canary: str, canary_weight: int) -> dict[str, int]:
    if canary_weight <= 0:
        return {stable: 100}
    if canary_weight >= 100:
        return {canary: 100}
    return {stable: 100 - canary_weight, canary: canary_weight}


def fallback_order(w: Work, ctx: Ctx) -> list[str]:
    """The order revisions are listed in: stable first, then the update, then the rest."""
    order = [r for r in (w.stable, w.current) if r is not None]
    order += sorted(r for r in ctx.observed.revisions if r not in order)
    return order


def guard(w: Work, ctx: Ctx, out: Outcome) -> list[str]:
    """Move weight off revisions without ready replicas (to the first ready revision in fallback
    order), drop matches and mirrors aimed at them, and say so."""
    notes: list[str] = []
    order = fallback_order(w, ctx)
    # Weight falls back to stable, or else to a revision already serving in this plan — never to
    # one the strategy keeps away from users (a preview, a shadow, a candidate not yet in play).
    candidates = [w.stable] + [r for r, v in out.weights.items() if v > 0]
    ready_order = [r for r in dict.fromkeys(candidates) if r is not None and ctx.ready(r) > 0]
    weights: dict[str, int] = {}
    moved: list[str] = []
    for rev, weight in out.weights.items():
        if weight <= 0:
            continue
        if ctx.ready(rev) > 0:
            weights[rev] = weights.get(rev, 0) + weight
        else:
            moved.append(rev)
            if ready_order:
                to = ready_order[0]
                weights[to] = weights.get(to, 0) + weight
    if moved:
        if ready_order:
            # No percentages: the amount can depend on remembered weights, the fact cannot.
            notes.append(f"traffic for {', '.join(moved)} sent to {ready_order[0]} instead: no ready replica")
        else:
            notes.append("no serving revision has a ready replica: nothing can serve")
    out.weights = {r: weights[r] for r in order + sorted(set(weights) - set(order)) if r in weights}
    kept_matches = []
    for m in out.matches:
        if ctx.ready(m.revision) > 0:
            kept_matches.append(m)
        else:
            notes.append(f"route {m.name!r} withheld: {m.revision} has no ready replica")
    out.matches = kept_matches
    kept_mirrors = []
    for mirror in out.mirrors:
        if ctx.ready(mirror.revision) > 0:
            kept_mirrors.append(mirror)
        else:
            notes.append(f"mirror {mirror.name!r} withheld: {mirror.revision} has no ready replica")
    out.mirrors = kept_mirrors
    if out.preview is not None and ctx.ready(out.preview) == 0:
        out.preview = None
    return notes
