"""`rollwise apply -f FILE...`: send Rollouts and AnalysisTemplates to the local control plane.

Every file is checked here first (the same loader and lint as `rollwise lint`), so a mistake in
any file applies nothing; then all files go to the control plane in one request, which checks them
again together, with what only it knows (templates already applied, ports in use), and stores all
of them in one transaction or none."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rollwise.cli.errors import CliError
from rollwise.cli.local_client import Client, error_of
from rollwise.cli.options import DEFAULT_DIR, StateDir


def apply(
    files: Annotated[list[Path], typer.Option("--file", "-f", help="YAML files, or folders to search for them.")],
    state_dir: StateDir = Path(DEFAULT_DIR),
) -> None:
    """Create or update the resources in FILE(s) on the local control plane."""
    from rollwise.lint import expand, lint_paths  # here: every CLI verb loads this module

    paths = list(dict.fromkeys(expand(files)))  # a file named twice is applied once
    if not paths:
        raise typer.BadParameter("no YAML files found", param_hint="--file")
    result = lint_paths(paths)
    if result.errors:
        n = len(result.errors)
        raise CliError(
            f"{n} problem{'s' if n != 1 else ''} found; nothing was applied", [str(p) for p in result.errors]
        )
    client = Client(state_dir)
    # One request for every file: the control plane checks them together and stores all or none.
    batch = [{"yaml": path.read_text(encoding="utf-8"), "file": str(path)} for path in paths]
    answer = client.request("POST", "/v1/apply", {"files": batch})
    if answer.status >= 400:
        raise error_of(answer)
    doc = answer.json()
    for warning in doc.get("warnings") or []:
        typer.echo(warning, err=True)
    for item in doc.get("applied") or []:
        typer.echo(f"{item['kind'].lower()}/{item['name']} {_verb(item)}")


def _verb(item: dict[str, object]) -> str:
    if not item.get("changed"):
        return "unchanged"
    return "created" if item.get("generation") == 1 else f"configured (generation {item['generation']})"
