"""`rollwise logs NAME`: the last lines of a rollout's replica logs (by default every replica of
the revision being rolled out)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rollwise.cli.local_client import Client, error_of, rollout_path
from rollwise.cli.options import DEFAULT_DIR, StateDir


def logs(
    name: Annotated[str, typer.Argument(help="The rollout's metadata.name.")],
    revision: Annotated[
        str | None, typer.Option("--revision", help="Revision hash (default: the current one).")
    ] = None,
    replica: Annotated[int | None, typer.Option("--replica", help="Replica index (default: all).", min=0)] = None,
    tail: Annotated[int, typer.Option("--tail", help="Lines per replica.", min=1)] = 100,
    state_dir: StateDir = Path(DEFAULT_DIR),
) -> None:
    """Print replica logs."""
    answer = Client(state_dir).request(
        "GET", rollout_path(name, "logs"), query={"revision": revision, "replica": replica, "tail": tail}
    )
    if answer.status >= 400:
        raise error_of(answer)
    typer.echo(answer.text, nl=False)
