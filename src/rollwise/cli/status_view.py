"""What `rollwise status` draws: the steps with the current one highlighted (and a progress bar
for a timed pause), a weight bar per revision with its replicas ready of desired, the latest
analysis measurements, the endpoints and the last events. Pure: a rollout's details in, a rich
renderable out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from rollwise.engine.steps import describe
from rollwise.spec.common import duration_seconds
from rollwise.spec.steps import CanaryStep

PHASE_STYLE = {
    "Healthy": "bold green",
    "Progressing": "bold cyan",
    "Paused": "bold yellow",
    "Degraded": "bold red",
    "Aborted": "bold red",
}
VERDICT_STYLE = {
    "Successful": "green",
    "Failed": "red",
    "Error": "red",
    "Inconclusive": "yellow",
    "Running": "cyan",
    "Pending": "dim",
}


def render(doc: dict[str, Any], now: datetime | None = None) -> RenderableType:
    now = now or datetime.now(UTC)
    s, status, spec = doc["summary"], doc.get("status") or {}, doc.get("spec") or {}
    parts: list[RenderableType] = []
    head = Text()
    head.append(s["name"], "bold")
    head.append(f"  {s['strategy']}  ")
    head.append(s["phase"] or "Pending", PHASE_STYLE.get(s["phase"] or "", ""))
    if s.get("currentRevision"):
        head.append(f"  revision {s['currentRevision']}")
        if s.get("stableRevision") and s["stableRevision"] != s["currentRevision"]:
            head.append(f" (stable {s['stableRevision']})")
    parts.append(head)
    if s.get("message"):
        parts.append(Text(s["message"], "dim"))
    steps = _steps(spec, status)
    if steps:
        parts += [Text(""), Text("Steps", "bold"), _steps_table(steps, status, now)]
    parts += [Text(""), Text("Traffic", "bold"), _traffic(status)]
    analysis = _analysis(doc.get("analysis") or [])
    if analysis is not None:
        parts += [Text(""), Text("Analysis", "bold"), analysis]
    endpoints = s.get("endpoints") or {}
    if endpoints:
        parts += [Text(""), Text("  ".join(f"{k}: {v}" for k, v in sorted(endpoints.items())))]
    events = doc.get("events") or []
    if events:
        parts += [Text(""), Text("Events", "bold")]
        for e in events[-6:]:
            parts.append(
                Text(f"{e['ts'][11:19]}  {e['reason']}: {e['message']}", "yellow" if e["type"] == "Warning" else "")
            )
    return Group(*parts)


def _steps(spec: dict[str, Any], status: dict[str, Any]) -> list[CanaryStep]:
    strategy = spec.get("strategy") or {}
    raw = (strategy.get("canary") or {}).get("steps")
    if raw is None and status.get("stage") == "promotionSteps":
        raw = ((strategy.get("shadow") or {}).get("promotion") or {}).get("steps")
    try:
        return [CanaryStep.model_validate(step) for step in raw or []]
    except ValidationError:
        return []


def _steps_table(steps: list[CanaryStep], status: dict[str, Any], now: datetime) -> Table:
    table = Table.grid(padding=(0, 1))
    current = status.get("currentStepIndex")
    updating = status.get("currentRevision") != status.get("stableRevision")
    for i, step in enumerate(steps):
        label = f"{i + 1}. {describe(step)}"
        if current is None or not updating:
            table.add_row(" ", Text(label, "dim"), "")
        elif i < current:
            table.add_row(Text("✓", "green"), Text(label), "")
        elif i == current:
            table.add_row(Text("▶", "bold yellow"), Text(label, "bold reverse"), _pause_progress(step, status, now))
        else:
            table.add_row(" ", Text(label, "dim"), "")
    return table


def _pause_progress(step: CanaryStep, status: dict[str, Any], now: datetime) -> RenderableType:
    if step.pause is None or step.pause.duration is None or not status.get("stepStartedAt"):
        return ""
    total = duration_seconds(step.pause.duration)
    started = datetime.strptime(status["stepStartedAt"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    elapsed = min(total, max(0.0, (now - started).total_seconds()))
    grid = Table.grid(padding=(0, 1))
    grid.add_row(ProgressBar(total=total or 1, completed=elapsed, width=24), Text(f"{elapsed:.0f}s of {total:g}s"))
    return grid


def _traffic(status: dict[str, Any]) -> RenderableType:
    revisions = status.get("revisions") or []
    if not revisions:
        return Text("no revision yet", "dim")
    table = Table.grid(padding=(0, 2))
    for r in revisions:
        weight = int(r.get("weight", 0))
        table.add_row(
            Text(r["revision"]),
            Text(r.get("role", ""), "dim"),
            ProgressBar(total=100, completed=weight, width=30),
            Text(f"{weight:>3}%"),
            Text(f"{r.get('ready', 0)}/{r.get('replicas', 0)} ready"),
        )
    return table


def _analysis(runs: list[dict[str, Any]]) -> RenderableType | None:
    if not runs:
        return None
    table = Table.grid(padding=(0, 2))
    for run in runs[-4:]:
        table.add_row(Text(run["run"]), Text(run["phase"], VERDICT_STYLE.get(run["phase"], "")), Text(""))
        for metric in run.get("metrics") or []:
            last = (metric.get("measurements") or [{}])[-1]
            value = last.get("value")
            text = f"{metric['name']}" + (f" = {value}" if value is not None else "")
            note = last.get("message") or metric.get("message") or ""
            table.add_row(
                Text("  " + text), Text(metric["phase"], VERDICT_STYLE.get(metric["phase"], "")), Text(note, "dim")
            )
    return table
