"""The AnalysisRun state machine: when each metric must be measured, and what its measurements add
up to, per metric and for the run.

Pure: no clock, no I/O. The caller passes `now`, asks what is due, measures, and records. All state
lives in the AnalysisRunStatus it produces, so a restarted controller rebuilds the machine from the
status and carries on (`AnalysisRunState(metrics, status=...)`).

Rules (those of Argo Rollouts where it has one):
- A metric is first measured `initialDelay` after the run starts, then every `interval` after the
  previous measurement finished. Without `count` it is measured once, or, with an interval, until
  the run is terminated. Error measurements do not count towards `count`: a measurement that could
  not be taken says nothing about the revision, and counting it would end a run on less evidence.
- A metric fails when more than `failureLimit` measurements failed, is inconclusive when more than
  `inconclusiveLimit` were, errs after more than `consecutiveErrorLimit` errors in a row, and
  succeeds when `count` is reached without any of these.
- The run takes the worst phase of its metrics (Failed > Error > Inconclusive) as soon as one
  reaches it, and stops measuring; it is Successful when every metric is. Dry-run metrics are
  measured and shown but never decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from rollwise.analysis.timestamps import format_time, parse_time
from rollwise.spec.analysis import AnalysisRunStatus, Measurement, Metric, MetricResult, Verdict
from rollwise.spec.common import duration_seconds

DEFAULT_RETENTION = 10
# A metric with no interval whose only measurement erred is retried after this long rather than
# at once, so that an unreachable provider is not hammered in a loop.
ERROR_RETRY_SECONDS = 10.0

FINAL: frozenset[Verdict] = frozenset({"Successful", "Failed", "Error", "Inconclusive"})
_SEVERITY: dict[Verdict, int] = {"Failed": 3, "Error": 2, "Inconclusive": 1}
_VERB: dict[Verdict, str] = {"Failed": "failed", "Error": "erred", "Inconclusive": "was inconclusive"}


class AnalysisRunState:
    """One analysis run. `retention` is how many measurements each metric keeps (counters keep
    counting past it)."""

    def __init__(
        self,
        metrics: Sequence[Metric],
        *,
        started_at: datetime | None = None,
        status: AnalysisRunStatus | None = None,
        retention: int = DEFAULT_RETENTION,
    ) -> None:
        if retention < 1:
            raise ValueError(f"retention must keep at least 1 measurement (got {retention})")
        names = [m.name for m in metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"metric names must be unique (got {names})")
        if not metrics:
            raise ValueError("an analysis run needs at least one metric")
        self.retention = retention
        self._metrics = {m.name: m for m in metrics}
        previous = {r.name: r for r in (status.metric_results or [])} if status else {}
        self._results: dict[str, MetricResult] = {}
        for m in metrics:
            kept = previous.get(m.name)
            self._results[m.name] = (
                kept.model_copy(deep=True)
                if kept is not None
                else MetricResult(name=m.name, phase="Pending", dry_run=m.dry_run)
            )
        if status is not None and status.started_at is not None:
            self.started_at = parse_time(status.started_at)
        elif started_at is not None:
            self.started_at = started_at
        else:
            raise ValueError("give started_at for a new run, or the status of a started one")
        self.phase: Verdict = status.phase if status is not None else "Pending"
        self.message: str | None = status.message if status is not None else None

    # --- what to do next ---------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.phase in FINAL

    def next_due(self, now: datetime) -> dict[str, datetime | None]:
        """When each metric must next be measured (a time at or before `now` means now); None when
        it needs no more measurements or one is in flight."""
        return {name: self._next(name, now) for name in self._metrics}

    def due(self, now: datetime) -> list[Metric]:
        return [self._metrics[n] for n, at in self.next_due(now).items() if at is not None and at <= now]

    def wake_at(self, now: datetime) -> datetime | None:
        """The earliest time something is due: when the caller should look again."""
        times = [at for at in self.next_due(now).values() if at is not None]
        return min(times) if times else None

    def _next(self, name: str, now: datetime) -> datetime | None:
        metric, result = self._metrics[name], self._results[name]
        if self.done or result.phase in FINAL:
            return None
        last = result.measurements[-1] if result.measurements else None
        if last is None:
            return self.started_at + _seconds(metric.initial_delay)
        if last.phase == "Running":
            return None
        if not self._needs_more(metric, result):
            return None
        gap = _seconds(metric.interval)
        if last.phase == "Error" and metric.interval is None:
            gap = timedelta(seconds=ERROR_RETRY_SECONDS)
        finished = last.finished_at or last.started_at
        return (parse_time(finished) if finished else now) + gap

    @staticmethod
    def _needs_more(metric: Metric, result: MetricResult) -> bool:
        taken: int = result.count - result.error
        if metric.count is not None:
            return taken < int(metric.count)
        if metric.interval is None:
            return taken < 1
        return True

    # --- measurements ------------------------------------------------------------------------------

    def begin(self, name: str, now: datetime) -> None:
        """Mark a measurement of `name` as in flight (shown as Running; the metric is not due
        meanwhile). Optional: `record` alone also works for quick measurements."""
        result = self._result(name)
        if result.measurements and result.measurements[-1].phase == "Running":
            raise ValueError(f"metric {name!r} already has a measurement in flight")
        self._append(result, Measurement(phase="Running", started_at=format_time(now)))
        if result.phase not in FINAL:
            result.phase = "Running"
        if self.phase == "Pending":
            self.phase = "Running"

    def record(self, name: str, measurement: Measurement, now: datetime) -> None:
        """Add a finished measurement (Successful, Failed, Inconclusive or Error) and re-assess."""
        if measurement.phase not in FINAL:
            raise ValueError(f"a recorded measurement must be final, not {measurement.phase}")
        result = self._result(name)
        m = measurement.model_copy()
        if result.measurements and result.measurements[-1].phase == "Running":
            in_flight = result.measurements.pop()
            if m.started_at is None:
                m.started_at = in_flight.started_at
        if m.started_at is None:
            m.started_at = format_time(now)
        if m.finished_at is None:
            m.finished_at = format_time(now)
        self._append(result, m)
        result.count += 1
        if m.phase == "Successful":
            result.successful += 1
        elif m.phase == "Failed":
            result.failed += 1
        elif m.phase == "Inconclusive":
            result.inconclusive += 1
        else:
            result.error += 1
        result.consecutive_error = result.consecutive_error + 1 if m.phase == "Error" else 0
        self._assess_metric(self._metrics[name], result, m)
        self._assess_run()

    def terminate(self, reason: str = "the run was terminated") -> None:
        """Stop measuring: metrics still running end Successful unless a limit was already
        exceeded (which would have ended them), as in Argo Rollouts."""
        if self.done:
            return
        for name, result in self._results.items():
            if result.phase in FINAL:
                continue
            if result.measurements and result.measurements[-1].phase == "Running":
                result.measurements.pop()
            taken = result.count - result.error
            result.phase = "Successful"
            result.message = (
                f"terminated after {_plural(taken, 'measurement')}"
                if taken
                else "terminated before its first measurement"
            )
            self._results[name] = result
        self.phase = "Successful"
        self.message = f"terminated: {reason}"

    def _result(self, name: str) -> MetricResult:
        if name not in self._results:
            raise KeyError(f"no metric {name!r} in this run (metrics: {', '.join(self._results)})")
        return self._results[name]

    def _append(self, result: MetricResult, m: Measurement) -> None:
        kept = [*(result.measurements or []), m]
        result.measurements = kept[-self.retention :]

    # --- assessment --------------------------------------------------------------------------------

    def _assess_metric(self, metric: Metric, r: MetricResult, last: Measurement) -> None:
        tail = f"; last: {last.message}" if last.message else ""
        if r.failed > metric.failure_limit:
            r.phase = "Failed"
            r.message = (
                f"{r.failed} of {_plural(r.count, 'measurement')} failed (failureLimit {metric.failure_limit}){tail}"
            )
        elif r.inconclusive > metric.inconclusive_limit:
            r.phase = "Inconclusive"
            r.message = (
                f"{r.inconclusive} of {_plural(r.count, 'measurement')} inconclusive "
                f"(inconclusiveLimit {metric.inconclusive_limit}){tail}"
            )
        elif r.consecutive_error > metric.consecutive_error_limit:
            r.phase = "Error"
            r.message = (
                f"{_plural(r.consecutive_error, 'consecutive error')} "
                f"(consecutiveErrorLimit {metric.consecutive_error_limit}){tail}"
            )
        elif not self._needs_more(metric, r):
            r.phase = "Successful"
            r.message = _tally(r)
        else:
            r.phase = "Running"
            r.message = last.message

    def _assess_run(self) -> None:
        if self.done:
            return
        decisive = [(m, self._results[n]) for n, m in self._metrics.items() if not m.dry_run]
        dry = [(m, self._results[n]) for n, m in self._metrics.items() if m.dry_run]
        bad = [(m, r) for m, r in decisive if r.phase in _SEVERITY]
        notes = [f"dry-run metric {m.name!r} {_VERB[r.phase]} (not decisive)" for m, r in dry if r.phase in _SEVERITY]
        if bad:
            metric, worst = max(bad, key=lambda mr: _SEVERITY[mr[1].phase])
            self.phase = worst.phase
            self.message = _join(f"metric {metric.name!r} {_VERB[worst.phase]}: {worst.message}", notes)
        elif decisive and all(r.phase == "Successful" for _, r in decisive):
            self.phase = "Successful"
            self.message = _join(f"{_plural(len(decisive), 'metric')} successful", notes)
        elif not decisive and all(r.phase in FINAL for _, r in dry):
            self.phase = "Successful"
            self.message = _join("only dry-run metrics, none decisive", notes)
        elif any(r.count for r in self._results.values()):
            self.phase = "Running"
            self.message = _join("", notes) or None
        else:
            self.phase = "Pending"

    # --- status ------------------------------------------------------------------------------------

    def status(self) -> AnalysisRunStatus:
        return AnalysisRunStatus(
            phase=self.phase,
            message=self.message,
            started_at=format_time(self.started_at),
            metric_results=[r.model_copy(deep=True) for r in self._results.values()],
        )

    def result(self, name: str) -> MetricResult:
        return self._result(name).model_copy(deep=True)


def _seconds(value: int | str | None) -> timedelta:
    return timedelta(seconds=0 if value is None else duration_seconds(value))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _tally(r: MetricResult) -> str:
    parts = [f"{r.successful} successful"]
    for n, word in ((r.failed, "failed"), (r.inconclusive, "inconclusive"), (r.error, "erred")):
        if n:
            parts.append(f"{n} {word}")
    return f"{_plural(r.count, 'measurement')}: {', '.join(parts)}"


def _join(head: str, notes: list[str]) -> str:
    return "; ".join([p for p in [head, *notes] if p])
