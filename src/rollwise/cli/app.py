"""Entry point: every verb is a small module; this file only wires them together and makes sure a
failure is one clear line (exit 1), a usage error exit 2, never a traceback."""

from __future__ import annotations

import os
import sys

import typer

from rollwise import __version__
from rollwise.cli import crds, lint, plan

app = typer.Typer(
    name="rollwise",
    help="Progressive delivery: recreate, rolling, blue-green, canary, shadow and A/B rollouts, with analysis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("lint")(lint.lint)
app.command("crds")(crds.crds)
app.command("plan")(plan.plan)


@app.command("version")
def version() -> None:
    """Print Rollwise's version."""
    typer.echo(__version__)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # the last line of defence: one line, not a traceback
        if os.environ.get("ROLLWISE_DEBUG"):
            raise
        typer.echo(f"rollwise: error: {exc} (set ROLLWISE_DEBUG=1 for details)", err=True)
        sys.exit(1)
