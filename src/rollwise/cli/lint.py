from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def lint(
    files: Annotated[list[Path], typer.Argument(help="YAML files, or folders to search for them.", show_default=False)],
    output: Annotated[str, typer.Option("--output", "-o", help="text or json")] = "text",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only, no warnings or summary.")] = False,
) -> None:
    """Check Rollouts, AnalysisTemplates and FlagSets. Exit 0 when clean, 1 with errors."""
    from rollwise.lint import expand, lint_paths  # here: every CLI verb loads this module

    if output not in ("text", "json"):
        raise typer.BadParameter("must be text or json", param_hint="--output")
    if not expand(files):
        raise typer.BadParameter("no YAML files found", param_hint="FILES")
    result = lint_paths(files)
    shown = result.errors if quiet else result.problems
    if output == "json":
        typer.echo(json.dumps([p.__dict__ for p in shown], indent=2))
    else:
        for problem in shown:
            typer.echo(str(problem), err=problem.severity == "error")
        if not quiet:
            n_err, n_warn = len(result.errors), len(result.problems) - len(result.errors)
            resources = len(result.loaded)
            summary = f"{resources} resource{'s' if resources != 1 else ''} checked"
            summary += f", {n_err} error{'s' if n_err != 1 else ''}, {n_warn} warning{'s' if n_warn != 1 else ''}"
            typer.echo(summary, err=bool(n_err))
    raise typer.Exit(1 if result.errors else 0)
