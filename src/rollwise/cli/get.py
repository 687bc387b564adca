"""`rollwise get NAME` and `rollwise list`: rollouts at a glance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rollwise.cli.local_client import Client, rollout_path
from rollwise.cli.options import DEFAULT_DIR, Output, StateDir, check_output


def get(
    name: Annotated[str, typer.Argument(help="The rollout's metadata.name.")],
    state_dir: StateDir = Path(DEFAULT_DIR),
    output: Output = "text",
) -> None:
    """Show one rollout: phase, step, traffic, replicas, endpoints."""
    check_output(output)
    doc = Client(state_dir).call("GET", rollout_path(name))
    if output == "json":
        typer.echo(json.dumps(doc, indent=2))
        return
    typer.echo(summary_text(doc["summary"]))


def summary_text(s: dict[str, Any]) -> str:
    """One rollout's summary as `get` prints it, on either platform (a cluster's has a namespace)."""
    lines = [f"Name:       {s['name']}"]
    if "namespace" in s:
        lines.append(f"Namespace:  {s['namespace']}")
    lines += [
        f"Strategy:   {s['strategy']}",
        f"Phase:      {s['phase'] or 'Pending'}",
        f"Message:    {s['message'] or ''}",
        f"Step:       {step_text(s)}",
        f"Stable:     {s['stableRevision'] or '-'}",
        f"Current:    {s['currentRevision'] or '-'}",
        f"Traffic:    {weights_text(s)}",
        f"Replicas:   {s['readyReplicas']} ready of {s['replicas']}",
    ]
    for listener, url in sorted((s.get("endpoints") or {}).items()):
        lines.append(f"Endpoint:   {listener} {url}")
    return "\n".join(lines)


def list_rollouts(state_dir: StateDir = Path(DEFAULT_DIR), output: Output = "text") -> None:
    """List the rollouts of the local control plane."""
    check_output(output)
    items = Client(state_dir).call("GET", "/v1/rollouts")["items"]
    if output == "json":
        typer.echo(json.dumps(items, indent=2))
        return
    if not items:
        typer.echo("no rollouts (apply one with `rollwise apply -f FILE`)")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("NAME", "STRATEGY", "PHASE", "STEP", "TRAFFIC", "READY", "ENDPOINT"):
        table.add_column(column)
    for s in items:
        table.add_row(
            s["name"],
            s["strategy"],
            s["phase"] or "-",
            step_text(s),
            weights_text(s),
            f"{s['readyReplicas']}/{s['replicas']}",
            (s.get("endpoints") or {}).get("main", "-"),
        )
    Console(width=200).print(table)


def step_text(s: dict[str, Any]) -> str:
    if s.get("step") is None or not s.get("steps"):
        return "-"
    return f"{min(s['step'] + 1, s['steps'])}/{s['steps']}"


def weights_text(s: dict[str, Any]) -> str:
    weights = s.get("weights") or {}
    return ", ".join(f"{rev} {w}%" for rev, w in weights.items()) or "none"
