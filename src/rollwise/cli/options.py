"""Options shared by the verbs that talk to a local control plane."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DEFAULT_DIR = ".rollwise"

StateDir = Annotated[
    Path,
    typer.Option(
        "--dir",
        envvar="ROLLWISE_DIR",
        help="State directory of the local control plane.",
        show_default=True,
    ),
]
Output = Annotated[str, typer.Option("--output", "-o", help="text or json")]


def check_output(output: str) -> None:
    if output not in ("text", "json"):
        raise typer.BadParameter("must be text or json", param_hint="--output")
