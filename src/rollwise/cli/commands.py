"""The verbs of a rollout in progress: promote, abort, retry, pause, resume, undo. The engine
decides whether a verb applies now; a refusal says why (exit 1)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rollwise.cli.local_client import Client, rollout_path
from rollwise.cli.options import DEFAULT_DIR, StateDir

Name = Annotated[str, typer.Argument(help="The rollout's metadata.name.")]


def _send(state_dir: Path, name: str, body: dict[str, Any]) -> None:
    doc = Client(state_dir).call("POST", rollout_path(name, "commands"), body)
    typer.echo(f"{name}: {doc.get('message', 'accepted')}")


def promote(
    name: Name,
    full: Annotated[bool, typer.Option("--full", help="Skip the remaining steps, pauses and analysis.")] = False,
    state_dir: StateDir = Path(DEFAULT_DIR),
) -> None:
    """Pass the current step (or pause, or gate); with --full, go straight to the end."""
    _send(state_dir, name, {"command": "promote", "full": full})


def abort(name: Name, state_dir: StateDir = Path(DEFAULT_DIR)) -> None:
    """Abort the update in progress: traffic back to the stable revision."""
    _send(state_dir, name, {"command": "abort"})


def retry(name: Name, state_dir: StateDir = Path(DEFAULT_DIR)) -> None:
    """Start an aborted update again from its first step."""
    _send(state_dir, name, {"command": "retry"})


def pause(name: Name, state_dir: StateDir = Path(DEFAULT_DIR)) -> None:
    """Hold the rollout where it is until resume."""
    _send(state_dir, name, {"command": "pause"})


def resume(name: Name, state_dir: StateDir = Path(DEFAULT_DIR)) -> None:
    """Continue a paused rollout (and re-run analysis that was inconclusive)."""
    _send(state_dir, name, {"command": "resume"})


def undo(
    name: Name,
    to_revision: Annotated[
        int | None, typer.Option("--to-revision", help="Revision number from `rollwise history`.", min=1)
    ] = None,
    state_dir: StateDir = Path(DEFAULT_DIR),
) -> None:
    """Go back to the previous revision (or the stable one mid-update), or to --to-revision N."""
    body: dict[str, Any] = {"command": "undo"}
    if to_revision is not None:
        body["toRevision"] = to_revision
    _send(state_dir, name, body)
