"""Counters per revision as the judgements read them: a `TrafficSource` fed with documents in the
local proxy's `/stats` shape. On the local platform they are samples of each of a rollout's
proxies (summed over its listeners: the preview port serves real requests too), plus the mirror
counters for shadow comparisons; the Kubernetes controller builds the same documents from its
readings of the router's metrics in Prometheus.

The counters are cumulative while a proxy runs; `CounterHistory` turns samples into windows. A
control plane that just started has one sample only: a window then covers everything the proxy
counted since it started, which is the best figure there is."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rollwise.analysis.providers.builtin import CounterHistory, TrafficCounts

# Samples are taken every second; a window longer than this covers what there is.
KEEP_SECONDS = 900.0


@dataclass(frozen=True)
class MirrorCounts:
    """What the proxies mirrored to one revision: sent, answered and compared, identical, and the
    differences by kind ("status", "header:<name>", "body")."""

    sent: int = 0
    compared: int = 0
    identical: int = 0
    errors: int = 0
    diffs: Mapping[str, int] = field(default_factory=dict)

    def minus(self, base: MirrorCounts) -> MirrorCounts:
        return MirrorCounts(
            sent=self.sent - base.sent,
            compared=self.compared - base.compared,
            identical=self.identical - base.identical,
            errors=self.errors - base.errors,
            diffs={k: v - base.diffs.get(k, 0) for k, v in self.diffs.items()},
        )


class ProxyTraffic:
    """A TrafficSource over the samples of one rollout's proxies."""

    def __init__(self, keep_seconds: float = KEEP_SECONDS) -> None:
        self._history = CounterHistory(keep_seconds)
        self._latest: dict[str, TrafficCounts] = {}
        self._mirrors: dict[str, MirrorCounts] = {}

    def record(self, stats: Iterable[Mapping[str, Any]], at: float | None = None) -> None:
        """One sample: the `/stats` documents of every proxy of the rollout, taken now."""
        at = time.monotonic() if at is None else at
        totals: dict[str, TrafficCounts] = {}
        mirrors: dict[str, MirrorCounts] = {}
        for doc in stats:
            for revision, snap in (doc.get("revisions") or {}).items():
                counts = _counts(snap)
                totals[revision] = _add(totals[revision], counts) if revision in totals else counts
            for revision, snap in (doc.get("mirrors") or {}).items():
                counts_m = _mirror(snap)
                mirrors[revision] = _add_mirror(mirrors[revision], counts_m) if revision in mirrors else counts_m
                if snap.get("requests"):
                    # A shadow's answers to mirrored requests are its traffic: builtin metrics
                    # of a revision that serves no user judge these.
                    counts = _counts(snap)
                    totals[revision] = _add(totals[revision], counts) if revision in totals else counts
        for revision, counts in totals.items():
            self._history.record(revision, at, counts)
        self._latest = totals
        self._mirrors = mirrors

    # TrafficSource
    def traffic(self, revision: str, window_seconds: float) -> TrafficCounts | None:
        return self._history.traffic(revision, window_seconds)

    def totals(self, revision: str) -> TrafficCounts:
        """Everything the proxies counted for the revision so far (zero when they never saw it)."""
        return self._latest.get(revision) or TrafficCounts(0, 0)

    def mirror_totals(self, revision: str) -> MirrorCounts:
        return self._mirrors.get(revision) or MirrorCounts()


def _counts(snap: Mapping[str, Any]) -> TrafficCounts:
    requests = snap.get("requests") or {}
    latency = snap.get("latency") or {}
    buckets = [(math.inf if b == "+Inf" else float(b), int(c)) for b, c in latency.get("buckets") or []]
    total = sum(int(v) for v in requests.values())
    # Only the revision's own 5xx count against it: the proxy's failures to reach it (502/503/504
    # it answered itself) are the platform's, kept apart in platformErrors.
    return TrafficCounts.from_seconds(total, int(requests.get("5xx", 0)), buckets, float(latency.get("sum", 0.0)))


def _add(a: TrafficCounts, b: TrafficCounts) -> TrafficCounts:
    if [x for x, _ in a.latency_buckets] == [x for x, _ in b.latency_buckets]:
        buckets = tuple(
            (bound, ca + cb) for (bound, ca), (_, cb) in zip(a.latency_buckets, b.latency_buckets, strict=True)
        )
    else:
        buckets = a.latency_buckets or b.latency_buckets
    return TrafficCounts(a.requests + b.requests, a.errors + b.errors, buckets, a.latency_sum_ms + b.latency_sum_ms)


def _mirror(snap: Mapping[str, Any]) -> MirrorCounts:
    return MirrorCounts(
        sent=int(snap.get("sent", 0)),
        compared=int(snap.get("compared", 0)),
        identical=int(snap.get("identical", 0)),
        errors=sum(int(v) for v in (snap.get("errors") or {}).values()),
        diffs={str(k): int(v) for k, v in (snap.get("diffs") or {}).items()},
    )


def _add_mirror(a: MirrorCounts, b: MirrorCounts) -> MirrorCounts:
    diffs = dict(a.diffs)
    for k, v in b.diffs.items():
        diffs[k] = diffs.get(k, 0) + v
    return MirrorCounts(a.sent + b.sent, a.compared + b.compared, a.identical + b.identical, a.errors + b.errors, diffs)
