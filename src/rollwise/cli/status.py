"""`rollwise status NAME [-w]`: the live view of a rollout (see status_view)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live

from rollwise.cli.errors import CliError
from rollwise.cli.local_client import Client, rollout_path
from rollwise.cli.options import DEFAULT_DIR, StateDir

DONE = ("Healthy", "Aborted")


def status(
    name: Annotated[str, typer.Argument(help="The rollout's metadata.name.")],
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh until Healthy or Aborted (or Ctrl-C).")] = False,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between refreshes.", min=0.2)] = 1.0,
    state_dir: StateDir = Path(DEFAULT_DIR),
) -> None:
    """Show a rollout's steps, traffic, replicas and analysis; -w to follow it."""
    from rollwise.cli.status_view import render  # here: the spec models cost more than the rest

    client = Client(state_dir)
    path = rollout_path(name)
    console = Console()
    doc = client.call("GET", path)
    if not watch:
        console.print(render(doc))
        return
    try:
        if console.is_terminal:
            with Live(render(doc), console=console, refresh_per_second=4, transient=False) as live:
                while doc["summary"]["phase"] not in DONE:
                    time.sleep(interval)
                    doc = client.call("GET", path)
                    live.update(render(doc))
        else:
            # Piped or logged: a new view each time the rollout moves, not a redraw per second.
            console.print(render(doc))
            shown = _moment(doc)
            while doc["summary"]["phase"] not in DONE:
                time.sleep(interval)
                doc = client.call("GET", path)
                if _moment(doc) != shown:
                    shown = _moment(doc)
                    console.print(render(doc))
    except KeyboardInterrupt:
        return
    if doc["summary"]["phase"] == "Aborted":
        raise CliError(f"rollout {name} aborted: {doc['summary']['message'] or ''}")


def _moment(doc: dict[str, Any]) -> tuple[Any, ...]:
    s = doc["summary"]
    return (s["phase"], s["step"], s["currentRevision"], tuple(sorted(s["weights"].items())), s["readyReplicas"])
