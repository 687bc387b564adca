"""Per-revision counters and latency histograms, and their Prometheus text form.

Recording is a few list increments per request (no logging call, no lock: the proxy is one event
loop). Readers take a `snapshot()` — plain frozen data — so rendering never races with recording.
Counters live as long as the proxy, across route-table swaps, so rates stay continuous."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from typing import Any

# Seconds; fixed so that histograms from different runs and revisions can be compared and summed.
BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RevisionStats:
    """Counters of one revision. `classes[n]` counts answers with status n*100 to n*100+99 from the
    revision itself; failures of the platform (connect refused, timeouts, ...) are counted apart in
    `errors`, because an analysis judging the revision must not blame it for the proxy's trouble."""

    __slots__ = ("buckets", "classes", "errors", "latency_sum", "retries")

    def __init__(self) -> None:
        self.classes = [0] * 10
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.latency_sum = 0.0
        self.errors: dict[str, int] = {}
        self.retries = 0

    def observe(self, status: int, seconds: float) -> None:
        self.classes[status // 100] += 1
        self.buckets[bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def snapshot(self) -> RevisionSnapshot:
        cumulative: list[tuple[float, int]] = []
        running = 0
        for bound, count in zip((*BUCKETS, math.inf), self.buckets, strict=True):
            running += count
            cumulative.append((bound, running))
        requests = {f"{n}xx": self.classes[n] for n in range(2, 6)}
        return RevisionSnapshot(
            requests=requests,
            platform_errors=dict(self.errors),
            retries=self.retries,
            latency_buckets=tuple(cumulative),
            latency_sum=self.latency_sum,
            latency_count=running,
        )


class MirrorStats:
    """What mirroring to one revision did: sent, dropped (not sent, and why), errors (sent but not
    compared: the mirror failed, or `primary_failed`), compared, and how the mirrored answers
    differed from the primary's, by kind, with a bounded sample for the report. Every copy sent
    ends up in `compared` or in `errors`.

    The mirrored answers are also counted as a revision's are (`answers`: status classes and
    latency), so that a shadow, which serves no user, can be judged on its own figures."""

    __slots__ = ("answers", "compared", "diffs", "dropped", "errors", "identical", "samples", "sent")

    def __init__(self, sample_size: int = 50) -> None:
        self.sent = 0
        self.compared = 0
        self.identical = 0
        self.dropped: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.diffs: dict[str, int] = {}
        self.samples: deque[dict[str, Any]] = deque(maxlen=sample_size)
        self.answers = RevisionStats()

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def record(self, kinds: list[str], sample: dict[str, Any] | None) -> None:
        self.compared += 1
        if not kinds:
            self.identical += 1
            return
        for kind in kinds:
            self.diffs[kind] = self.diffs.get(kind, 0) + 1
        if sample is not None:
            self.samples.append(sample)

    def snapshot(self, revision: str) -> MirrorSnapshot:
        return MirrorSnapshot(
            revision=revision,
            sent=self.sent,
            dropped=dict(self.dropped),
            errors=dict(self.errors),
            compared=self.compared,
            identical=self.identical,
            diffs=dict(self.diffs),
            samples=list(self.samples),
            answers=self.answers.snapshot(),
        )


@dataclass(frozen=True)
class RevisionSnapshot:
    requests: dict[str, int]
    platform_errors: dict[str, int]
    retries: int
    latency_buckets: tuple[tuple[float, int], ...]  # cumulative, the last bound is +Inf
    latency_sum: float
    latency_count: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "platformErrors": self.platform_errors,
            "retries": self.retries,
            "latency": {
                "buckets": [["+Inf" if math.isinf(b) else b, c] for b, c in self.latency_buckets],
                "sum": self.latency_sum,
                "count": self.latency_count,
            },
        }


@dataclass(frozen=True)
class MirrorSnapshot:
    revision: str
    sent: int
    dropped: dict[str, int]
    errors: dict[str, int]
    compared: int
    identical: int
    diffs: dict[str, int]
    samples: list[dict[str, Any]]
    answers: RevisionSnapshot = field(default_factory=lambda: RevisionStats().snapshot())

    def to_dict(self) -> dict[str, Any]:
        answers = self.answers.to_dict()
        return {
            "revision": self.revision,
            "sent": self.sent,
            "dropped": self.dropped,
            "errors": self.errors,
            "compared": self.compared,
            "identical": self.identical,
            "diffs": self.diffs,
            "samples": self.samples,
            # The mirrored answers by status class and their latency, shaped as a revision's.
            "requests": answers["requests"],
            "latency": answers["latency"],
        }


@dataclass(frozen=True)
class UpstreamSnapshot:
    inflight: int
    idle: int


@dataclass(frozen=True)
class ProxySnapshot:
    generation: int
    connections: int
    revisions: dict[str, RevisionSnapshot]
    mirrors: dict[str, MirrorSnapshot]
    upstreams: dict[str, UpstreamSnapshot] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "connections": self.connections,
            "revisions": {k: v.to_dict() for k, v in self.revisions.items()},
            "mirrors": {k: v.to_dict() for k, v in self.mirrors.items()},
            "upstreams": {k: {"inflight": v.inflight, "idle": v.idle} for k, v in self.upstreams.items()},
        }


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _float(value: float) -> str:
    return "+Inf" if math.isinf(value) else repr(float(value))


def render_prometheus(snap: ProxySnapshot) -> str:
    """The Prometheus text exposition format (version 0.0.4)."""
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")

    family("rollwise_proxy_route_table_generation", "gauge", "Generation of the route table in force.")
    lines.append(f"rollwise_proxy_route_table_generation {snap.generation}")
    family("rollwise_proxy_client_connections", "gauge", "Open client connections.")
    lines.append(f"rollwise_proxy_client_connections {snap.connections}")

    family("rollwise_proxy_requests_total", "counter", "Answers from a revision, by status class.")
    for rev, r in snap.revisions.items():
        for code, count in r.requests.items():
            lines.append(f'rollwise_proxy_requests_total{{revision="{_label(rev)}",code="{code}"}} {count}')
    family(
        "rollwise_proxy_platform_errors_total", "counter", "Requests the proxy answered itself (502/503/504), by cause."
    )
    for rev, r in snap.revisions.items():
        for kind, count in sorted(r.platform_errors.items()):
            lines.append(
                f'rollwise_proxy_platform_errors_total{{revision="{_label(rev)}",kind="{_label(kind)}"}} {count}'
            )
    family("rollwise_proxy_retries_total", "counter", "Requests retried on another replica after a refused connect.")
    for rev, r in snap.revisions.items():
        lines.append(f'rollwise_proxy_retries_total{{revision="{_label(rev)}"}} {r.retries}')

    name = "rollwise_proxy_request_duration_seconds"
    family(name, "histogram", "Time from the request's head to the last byte of the answer.")
    for rev, r in snap.revisions.items():
        lab = _label(rev)
        for bound, count in r.latency_buckets:
            lines.append(f'{name}_bucket{{revision="{lab}",le="{_float(bound)}"}} {count}')
        lines.append(f'{name}_sum{{revision="{lab}"}} {_float(r.latency_sum)}')
        lines.append(f'{name}_count{{revision="{lab}"}} {r.latency_count}')

    family("rollwise_proxy_mirror_requests_total", "counter", "Mirrored requests, by outcome.")
    for rev, m in snap.mirrors.items():
        lab = _label(rev)
        lines.append(f'rollwise_proxy_mirror_requests_total{{revision="{lab}",outcome="sent"}} {m.sent}')
        lines.append(f'rollwise_proxy_mirror_requests_total{{revision="{lab}",outcome="compared"}} {m.compared}')
        lines.append(f'rollwise_proxy_mirror_requests_total{{revision="{lab}",outcome="identical"}} {m.identical}')
    family("rollwise_proxy_mirror_dropped_total", "counter", "Mirror copies not sent, by reason.")
    for rev, m in snap.mirrors.items():
        for reason, count in sorted(m.dropped.items()):
            lines.append(
                f'rollwise_proxy_mirror_dropped_total{{revision="{_label(rev)}",reason="{_label(reason)}"}} {count}'
            )
    family("rollwise_proxy_mirror_errors_total", "counter", "Mirror copies that got no answer, by cause.")
    for rev, m in snap.mirrors.items():
        for kind, count in sorted(m.errors.items()):
            lines.append(
                f'rollwise_proxy_mirror_errors_total{{revision="{_label(rev)}",kind="{_label(kind)}"}} {count}'
            )
    family(
        "rollwise_proxy_mirror_diffs_total", "counter", "Mirrored answers that differed from the primary's, by kind."
    )
    for rev, m in snap.mirrors.items():
        for kind, count in sorted(m.diffs.items()):
            lines.append(f'rollwise_proxy_mirror_diffs_total{{revision="{_label(rev)}",kind="{_label(kind)}"}} {count}')

    family("rollwise_proxy_mirror_responses_total", "counter", "Answers to mirrored requests, by status class.")
    for rev, m in snap.mirrors.items():
        for code, count in m.answers.requests.items():
            lines.append(f'rollwise_proxy_mirror_responses_total{{revision="{_label(rev)}",code="{code}"}} {count}')
    name = "rollwise_proxy_mirror_duration_seconds"
    family(name, "histogram", "Time from sending a mirrored request to the last byte of its answer.")
    for rev, m in snap.mirrors.items():
        lab = _label(rev)
        for bound, count in m.answers.latency_buckets:
            lines.append(f'{name}_bucket{{revision="{lab}",le="{_float(bound)}"}} {count}')
        lines.append(f'{name}_sum{{revision="{lab}"}} {_float(m.answers.latency_sum)}')
        lines.append(f'{name}_count{{revision="{lab}"}} {m.answers.latency_count}')

    family("rollwise_proxy_upstream_inflight", "gauge", "Requests in flight to each upstream replica.")
    for addr, u in sorted(snap.upstreams.items()):
        lines.append(f'rollwise_proxy_upstream_inflight{{upstream="{_label(addr)}"}} {u.inflight}')
    return "\n".join(lines) + "\n"
