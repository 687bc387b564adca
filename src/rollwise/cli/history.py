"""`rollwise history NAME`: the revisions of a rollout, numbered as `undo --to-revision` takes them."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rollwise.cli.local_client import Client, rollout_path
from rollwise.cli.options import DEFAULT_DIR, Output, StateDir, check_output


def history(
    name: Annotated[str, typer.Argument(help="The rollout's metadata.name.")],
    state_dir: StateDir = Path(DEFAULT_DIR),
    output: Output = "text",
) -> None:
    """List the rollout's revisions, oldest first."""
    check_output(output)
    items = Client(state_dir).call("GET", rollout_path(name, "history"))["items"]
    if output == "json":
        typer.echo(json.dumps(items, indent=2))
        return
    table = Table(box=None, pad_edge=False)
    for column in ("REVISION", "HASH", "CREATED", "ROLE", "COMMAND"):
        table.add_column(column)
    for item in items:
        role = "current" if item["current"] else ""
        if item["stable"]:
            role = "stable" if not role else "current, stable"
        table.add_row(str(item["number"]), item["revision"], item["createdAt"] or "", role, describe(item["template"]))
    Console(width=200).print(table)


def describe(template: dict[str, Any] | None) -> str:
    if not template:
        return "(template pruned)"
    text = shlex.join(template.get("command") or [])
    env = template.get("env") or {}
    if env:
        text += "  " + " ".join(f"{k}={v}" for k, v in sorted(env.items()))
    return text
