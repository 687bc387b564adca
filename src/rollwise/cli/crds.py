from __future__ import annotations

from typing import Annotated

import typer
import yaml


def crds(
    kind: Annotated[str | None, typer.Option("--kind", help="Only this kind's CRD, e.g. Rollout.")] = None,
) -> None:
    """Print the CustomResourceDefinitions (apply with `rollwise crds | kubectl apply -f -`)."""
    from rollwise.spec.crd import all_crds  # here: every CLI verb loads this module

    docs = all_crds()
    if kind is not None:
        docs = [d for d in docs if d["spec"]["names"]["kind"].lower() == kind.lower()]
        if not docs:
            raise typer.BadParameter(f"unknown kind {kind!r}", param_hint="--kind")
    typer.echo(yaml.safe_dump_all(docs, sort_keys=False, width=120), nl=False)
