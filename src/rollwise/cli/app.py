"""Entry point: every verb is a small module; this file only wires them together and makes sure a
failure is one clear line (exit 1), a usage error exit 2, never a traceback."""

from __future__ import annotations

import os
import sys

import typer

from rollwise import __version__
from rollwise.cli import controller, crds, flags, install, lint, plan, verbs
from rollwise.cli.errors import CliError

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
# Both platforms: the local control plane, or a cluster (rules in cli/platform.py).
app.command("up")(verbs.up_)
app.command("down")(verbs.down_)
app.command("apply")(verbs.apply_)
app.command("get")(verbs.get_)
app.command("list")(verbs.list_)
app.command("status")(verbs.status_)
app.command("promote")(verbs.promote)
app.command("abort")(verbs.abort)
app.command("retry")(verbs.retry)
app.command("pause")(verbs.pause)
app.command("resume")(verbs.resume)
app.command("undo")(verbs.undo)
app.command("history")(verbs.history_)
app.command("logs")(verbs.logs_)
app.add_typer(verbs.set_app, name="set")
app.add_typer(flags.app, name="flags")
# Kubernetes.
app.command("install")(install.install)
app.add_typer(controller.app, name="controller")


@app.command("version")
def version() -> None:
    """Print Rollwise's version."""
    typer.echo(__version__)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except CliError as exc:
        for line in exc.details:
            typer.echo(line, err=True)
        typer.echo(f"rollwise: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:  # the last line of defence: one line, not a traceback
        if os.environ.get("ROLLWISE_DEBUG"):
            raise
        typer.echo(f"rollwise: error: {exc} (set ROLLWISE_DEBUG=1 for details)", err=True)
        sys.exit(1)
