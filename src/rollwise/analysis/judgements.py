"""Judgement runs, the same on both platforms: the engine asks for a verdict computed from what
each revision served (the local proxies' counters, or the router's metrics in Prometheus on
Kubernetes), not from templates. `dynamic`: one interval of a dynamic canary, judged by the sequential test
(analysis/sequential.py); `abWinner`: the A/B report on `winnerBy`; `shadowCompare`: how often the
shadow answered differently from the revision users got.

Each evaluates every second or two (a judgement is a subtraction of counters), so harm is acted
on when it shows, not at the end of an interval."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from rollwise.analysis.counters import MirrorCounts
from rollwise.analysis.job_env import JobEnv, MeasurementOut, Report
from rollwise.analysis.providers.builtin import TrafficCounts
from rollwise.analysis.sequential import Evidence, WindowCounts, decide, wilson_bounds
from rollwise.analysis.timestamps import format_time, parse_time
from rollwise.analysis.waiting import wait_event
from rollwise.engine import AnalysisRunRequest
from rollwise.spec.analysis import Verdict
from rollwise.spec.common import duration_seconds

if TYPE_CHECKING:
    from rollwise.analysis.reports import VariantData

KEEP_MEASUREMENTS = 10
PERSIST_EVERY = 5
# Stable's counts from just before the canary tell the sequential test stable's rates at once.
STABLE_HISTORY_SECONDS = 600.0
# Mismatches must be clearly above the allowed rate before the comparison fails early.
EARLY_FAIL_MIN_COMPARED = 20
EARLY_FAIL_Z = 2.576
# Stable must have answered this many requests before a dynamic canary for its p95 to become the
# latency threshold; with fewer, the canary is judged on errors alone.
MIN_LATENCY_HISTORY = 100
# At most this many latency samples are rebuilt from a histogram for the A/B report.
MAX_LATENCY_SAMPLES = 5000


class Judgement:
    """What the three judgements share: phase, message, a short list of evaluations for the API,
    and the loop that evaluates until a verdict (or until terminated)."""

    name = "judgement"
    period = 1.0

    def __init__(self, request: AnalysisRunRequest, env: JobEnv, state: Mapping[str, Any] | None) -> None:
        self.request = request
        self.env = env
        state = dict(state or {})
        self._phase: Verdict = state.get("phase", "Pending")
        self._message: str | None = state.get("message")
        self.started_at: datetime = parse_time(state["startedAt"]) if state.get("startedAt") else env.clock()
        self.evaluations: list[dict[str, Any]] = list(state.get("evaluations") or [])
        self._stop = asyncio.Event()

    @property
    def phase(self) -> Verdict:
        return self._phase

    @property
    def message(self) -> str | None:
        return self._message

    def terminate(self, reason: str) -> None:
        if self._phase not in ("Successful", "Failed", "Error", "Inconclusive"):
            self._phase, self._message = "Successful", f"terminated: {reason}"
        self._stop.set()

    def state(self) -> dict[str, Any]:
        return {
            "job": self.request.kind,
            "phase": self._phase,
            "message": self._message,
            "startedAt": format_time(self.started_at),
            "evaluations": self.evaluations,
        }

    def metrics(self) -> list[dict[str, Any]]:
        return [{"name": self.name, "phase": self._phase, "message": self._message, "measurements": self.evaluations}]

    async def run(self, report: Report) -> None:
        await self.env.refresh()
        self.begin()
        self._phase = "Running"
        report([])
        ticks = 0
        while self._phase == "Running":
            if await wait_event(self._stop, self.period):
                return
            await self.env.refresh()
            outcome = self.evaluate(self.env.clock())
            if outcome is None:
                continue
            phase, message, value = outcome
            self._note(phase, message, value)
            ticks += 1
            if phase != "Running":
                report([MeasurementOut(self.name, phase, value, message)])
            elif ticks % PERSIST_EVERY == 0:
                report([])  # progress is saved now and then, not at every evaluation

    def _note(self, phase: Verdict, message: str, value: str | None) -> None:
        self._phase, self._message = phase, message
        entry: dict[str, Any] = {"phase": phase, "message": message, "finishedAt": format_time(self.env.clock())}
        if value is not None:
            entry["value"] = value
        # The evaluation in progress replaces the previous one in progress; verdicts are kept.
        kept = (
            self.evaluations[:-1]
            if self.evaluations and self.evaluations[-1]["phase"] == "Running"
            else self.evaluations
        )
        self.evaluations = [*kept, entry][-KEEP_MEASUREMENTS:]

    def begin(self) -> None:
        """Take the baselines the evaluations subtract from (first start only)."""

    def evaluate(self, now: datetime) -> tuple[Verdict, str, str | None] | None:
        raise NotImplementedError


def _pair(c: TrafficCounts, threshold_ms: float | None = None) -> list[int]:
    """What an interval subtracts from: requests, errors and, when latency is judged, the
    requests slower than the threshold."""
    return [c.requests, c.errors] if threshold_ms is None else [c.requests, c.errors, slow_count(c, threshold_ms)]


def p95_bound(c: TrafficCounts | None) -> float | None:
    """The smallest bound of `c`'s histogram (ms) at or under which 95% of its requests were
    answered; None without enough requests to tell. A bound rather than an interpolated p95: the
    counts of slower requests are then exact, read straight off the histogram."""
    if c is None or c.latency_count < MIN_LATENCY_HISTORY:
        return None
    total = c.latency_count
    for bound, count in c.latency_buckets:
        if math.isfinite(bound) and count >= 0.95 * total:
            return bound
    return None


def slow_count(c: TrafficCounts, threshold_ms: float) -> int:
    """Requests of `c` slower than `threshold_ms`, one of its histogram's bounds."""
    under = 0
    for bound, count in c.latency_buckets:
        if bound > threshold_ms * (1 + 1e-9):
            break
        under = count
    return max(0, c.latency_count - under)


class DynamicJudgement(Judgement):
    """One interval of a dynamic canary: the canary's and stable's requests and errors during it,
    and how many of their requests were slower than stable's p95 from before the canary (the
    latency threshold, held for the whole rollout: the first interval takes it from stable's
    history, later ones are given it with the evidence), folded into the evidence of the earlier
    intervals. Harm (errors or slowness) aborts at once; at the interval's end a raise is
    Successful, a hold Inconclusive."""

    name = "sequential-test"

    def __init__(
        self,
        request: AnalysisRunRequest,
        env: JobEnv,
        state: Mapping[str, Any] | None,
        *,
        evidence: Evidence | None = None,
        weight: int = 0,
        latency_threshold_ms: float | None = None,
    ) -> None:
        super().__init__(request, env, state)
        assert request.dynamic is not None
        self.config = request.dynamic
        state = dict(state or {})
        self.evidence = Evidence.from_dict(state["evidence"]) if "evidence" in state else evidence
        self.after: Evidence | None = Evidence.from_dict(state["evidenceAfter"]) if state.get("evidenceAfter") else None
        self.base: dict[str, list[int]] | None = state.get("base")
        self.weight = int(state.get("weight", weight))
        threshold = state.get("latencyThresholdMs", latency_threshold_ms)
        self.latency_threshold_ms: float | None = None if threshold is None else float(threshold)
        self.end = self.started_at + timedelta(seconds=duration_seconds(self.config.interval))

    def state(self) -> dict[str, Any]:
        out = super().state()
        out["weight"] = self.weight
        if self.evidence is not None:
            out["evidence"] = self.evidence.to_dict()
        if self.after is not None:
            out["evidenceAfter"] = self.after.to_dict()
        if self.base is not None:
            out["base"] = self.base
        if self.latency_threshold_ms is not None:
            out["latencyThresholdMs"] = self.latency_threshold_ms
        return out

    def begin(self) -> None:
        traffic, req = self.env.traffic, self.request
        if self.evidence is None:
            history = traffic.traffic(req.stable_revision, STABLE_HISTORY_SECONDS) if req.stable_revision else None
            self.latency_threshold_ms = threshold = p95_bound(history)
            if history is None:
                self.evidence = Evidence()
            else:
                slow = None if threshold is None else slow_count(history, threshold)
                self.evidence = Evidence.with_stable_history(history.requests, history.errors, slow)
        if self.base is None:
            threshold = self.latency_threshold_ms
            stable = traffic.totals(req.stable_revision) if req.stable_revision else TrafficCounts(0, 0)
            self.base = {"canary": _pair(traffic.totals(req.revision), threshold), "stable": _pair(stable, threshold)}

    def evaluate(self, now: datetime) -> tuple[Verdict, str, str | None] | None:
        traffic, req = self.env.traffic, self.request
        assert self.base is not None and self.evidence is not None
        canary = traffic.totals(req.revision)
        stable = traffic.totals(req.stable_revision) if req.stable_revision else TrafficCounts(0, 0)
        base_canary, base_stable = self.base["canary"], self.base["stable"]
        (cn, ce), (sn, se) = base_canary[:2], base_stable[:2]
        threshold = self.latency_threshold_ms
        if canary.requests < cn or stable.requests < sn:
            # A proxy restarted and its counters began again: this interval starts over from here.
            self.base = {"canary": _pair(canary, threshold), "stable": _pair(stable, threshold)}
            return None
        canary_slow = stable_slow = None
        if threshold is not None and len(base_canary) == 3 and len(base_stable) == 3:
            canary_slow = min(max(0, slow_count(canary, threshold) - base_canary[2]), canary.requests - cn)
            stable_slow = min(max(0, slow_count(stable, threshold) - base_stable[2]), stable.requests - sn)
        window = WindowCounts(
            canary_requests=canary.requests - cn,
            canary_errors=min(canary.errors - ce, canary.requests - cn),
            stable_requests=stable.requests - sn,
            stable_errors=min(stable.errors - se, stable.requests - sn),
            canary_slow=canary_slow,
            stable_slow=stable_slow,
        )
        decision = decide(self.config, self.weight, self.evidence, window)
        value = f"{decision.statistics.harm_progress:.3f}"
        if decision.action == "abort":
            self.after = decision.evidence
            return "Failed", decision.reason, value
        if now < self.end:
            return "Running", f"observing until {format_time(self.end)}: {decision.reason}", value
        self.after = decision.evidence
        if decision.action == "raise":
            return "Successful", decision.reason, value
        return "Inconclusive", decision.reason, value


class WinnerJudgement(Judgement):
    """The A/B verdict on `winnerBy`, from what each variant served since the experiment began.
    Latency samples are rebuilt from the proxy's histogram (each request at its bucket's upper
    bound), so latency comparisons have the histogram's resolution."""

    name = "winner"
    period = 2.0

    def __init__(
        self,
        request: AnalysisRunRequest,
        env: JobEnv,
        state: Mapping[str, Any] | None,
        *,
        since: datetime | None = None,
    ) -> None:
        super().__init__(request, env, state)
        state = dict(state or {})
        self.since = parse_time(state["since"]) if state.get("since") else (since or self.started_at)

    def state(self) -> dict[str, Any]:
        return {**super().state(), "since": format_time(self.since)}

    def evaluate(self, now: datetime) -> tuple[Verdict, str, str | None] | None:
        req = self.request
        winner_by = req.winner_by
        assert winner_by is not None
        if req.stable_revision is None:
            return "Error", "no control (stable) revision to compare with", None
        window = max(1.0, (now - self.since).total_seconds())
        control = self.env.traffic.traffic(req.stable_revision, window) or TrafficCounts(0, 0)
        candidate = self.env.traffic.traffic(req.revision, window) or TrafficCounts(0, 0)
        need = winner_by.min_samples
        if control.requests < need or candidate.requests < need:
            return (
                "Running",
                f"collecting: control {control.requests}, candidate {candidate.requests} of {need} requests each",
                None,
            )
        # Imported when needed: the report's statistics (scipy) take a second to load, which
        # every start of the control plane would pay for a judgement only A/B tests use.
        from rollwise.analysis.reports import ab_report_by

        try:
            report = ab_report_by(winner_by, _variant("control", control), _variant("candidate", candidate))
        except ValueError as exc:
            return "Error", f"{exc}; an A/B winner is judged on success-rate, error-rate or latency", None
        if report.winner == "candidate":
            return "Successful", report.summary, "candidate"
        if report.winner == "control":
            return "Failed", report.summary, "control"
        return "Inconclusive", report.summary, None


def _variant(name: str, counts: TrafficCounts) -> VariantData:
    from rollwise.analysis.reports import VariantData

    return VariantData(name, counts.requests, min(counts.errors, counts.requests), _latency_samples(counts))


def _latency_samples(counts: TrafficCounts) -> list[float]:
    samples: list[float] = []
    total = counts.latency_count
    if total == 0:
        return samples
    scale = min(1.0, MAX_LATENCY_SAMPLES / total)
    below, last_finite = 0, 0.0
    for bound, cumulative in counts.latency_buckets:
        n = cumulative - below
        below = cumulative
        value = last_finite if math.isinf(bound) else bound
        last_finite = value
        samples += [value] * round(n * scale)
    return samples


class CompareJudgement(Judgement):
    """Shadow replies against the users': mismatches among the mirrored requests compared since
    the run began, of the kinds `compare` enables. Fails early once the mismatch rate is surely
    above `maxMismatchRate`; judged at the end of the shadow's `duration`."""

    name = "reply-comparison"

    def __init__(
        self,
        request: AnalysisRunRequest,
        env: JobEnv,
        state: Mapping[str, Any] | None,
        *,
        duration_s: float = 0.0,
    ) -> None:
        super().__init__(request, env, state)
        assert request.compare is not None
        self.compare = request.compare
        state = dict(state or {})
        self.end = parse_time(state["endAt"]) if state.get("endAt") else self.started_at + timedelta(seconds=duration_s)
        base = state.get("base")
        self.base = MirrorCounts(**base) if base else None

    def state(self) -> dict[str, Any]:
        out = {**super().state(), "endAt": format_time(self.end)}
        if self.base is not None:
            b = self.base
            out["base"] = {
                "sent": b.sent,
                "compared": b.compared,
                "identical": b.identical,
                "errors": b.errors,
                "diffs": dict(b.diffs),
            }
        return out

    def begin(self) -> None:
        if self.base is None:
            self.base = self.env.traffic.mirror_totals(self.request.revision)

    def evaluate(self, now: datetime) -> tuple[Verdict, str, str | None] | None:
        assert self.base is not None
        current = self.env.traffic.mirror_totals(self.request.revision)
        if current.sent < self.base.sent:
            self.base = current  # the proxy restarted
            return None
        delta = current.minus(self.base)
        mismatched, exact = self._mismatched(delta)
        limit = self.compare.max_mismatch_rate
        rate = mismatched / delta.compared if delta.compared else None
        shown = "n/a" if rate is None else f"{100 * rate:.2f}%"
        how = "" if exact else " (at least: the proxy counts kinds, not requests, for the kinds compared)"
        summary = (
            f"{mismatched} of {delta.compared} compared replies differ ({shown}{how}; allowed "
            f"{100 * limit:.2f}%), {delta.sent} mirrored, {delta.errors} unanswered"
        )
        value = None if rate is None else f"{rate:.4f}"
        if delta.compared >= EARLY_FAIL_MIN_COMPARED:
            _, lower = wilson_bounds(mismatched, delta.compared, EARLY_FAIL_Z)
            if lower > limit:
                return "Failed", summary, value
        if now < self.end:
            return "Running", summary, value
        if delta.compared == 0:
            return "Error", f"no mirrored reply was compared ({delta.sent} mirrored)", None
        return ("Failed" if rate is not None and rate > limit else "Successful"), summary, value

    def _mismatched(self, d: MirrorCounts) -> tuple[int, bool]:
        """Replies differing in a kind that counts. The proxy counts each kind, and the replies
        identical in every kind; when some kind does not count, only a lower bound is known."""
        c = self.compare
        # Headers are compared only when `compare.headers` names some (see routing.translate).
        if c.status and c.body:
            return d.compared - d.identical, True
        counted = [
            n
            for kind, n in d.diffs.items()
            if (kind == "status" and c.status) or (kind == "body" and c.body) or kind.startswith("header:")
        ]
        return max(counted, default=0), False
