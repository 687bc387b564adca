"""`rollwise set command NAME -- ARGV...` and `rollwise set env NAME K=V... [K-]`: change a
rollout's process template without editing its file. A changed template is a new revision, rolled
out by the rollout's strategy like any apply."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rollwise.cli.local_client import Client, rollout_path
from rollwise.cli.options import DEFAULT_DIR, StateDir

app = typer.Typer(help="Change a rollout's process template (a new revision).", no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="The rollout's metadata.name.")]


@app.command("command")
def set_command(
    name: Name,
    argv: Annotated[list[str], typer.Argument(help="The new command line, after --.", show_default=False)],
    state_dir: StateDir = Path(DEFAULT_DIR),
) -> None:
    """Replace the command: rollwise set command web -- rollwise-demo --flag."""
    _send(state_dir, name, {"command": argv})


@app.command("env")
def set_env(
    name: Name,
    pairs: Annotated[list[str], typer.Argument(help="NAME=VALUE to set, NAME- to remove.", show_default=False)],
    state_dir: StateDir = Path(DEFAULT_DIR),
) -> None:
    """Set or remove environment variables: rollwise set env web DEMO_VERSION=v3 OLD-."""
    env: dict[str, str | None] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if sep and key:
            env[key] = value
        elif not sep and pair.endswith("-") and len(pair) > 1:
            env[pair[:-1]] = None
        else:
            raise typer.BadParameter(f"{pair!r} is neither NAME=VALUE nor NAME-", param_hint="PAIRS")
    _send(state_dir, name, {"env": env})


def _send(state_dir: Path, name: str, body: dict[str, Any]) -> None:
    doc = Client(state_dir).call("POST", rollout_path(name, "set"), body)
    for warning in doc.get("warnings") or []:
        typer.echo(warning, err=True)
    for item in doc.get("applied") or []:
        verb = f"configured (generation {item['generation']})" if item.get("changed") else "unchanged"
        typer.echo(f"{item['kind'].lower()}/{item['name']} {verb}")
