"""`rollwise install --print | kubectl apply -f -` and `rollwise install --write DIR`: the objects
that run Rollwise's controller in a cluster (CRDs, Namespace, RBAC, Deployment)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from rollwise.cli.errors import CliError

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_HTTP_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")


def install(
    print_: Annotated[bool, typer.Option("--print", help="Print the manifests as one YAML stream.")] = False,
    write: Annotated[
        Path | None, typer.Option("--write", help="Write them as a kustomize base into this directory.")
    ] = None,
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="Namespace of the controller.")] = "",
    image: Annotated[str, typer.Option("--image", help="The controller's container image.")] = "",
    prometheus_url: Annotated[
        str,
        typer.Option(
            "--prometheus-url",
            help="Prometheus holding the router's request metrics (builtin metrics, dynamic canaries, A/B winners).",
        ),
    ] = "",
) -> None:
    """Print (or write) what installs the controller: rollwise install --print | kubectl apply -f -"""
    from rollwise.platforms.kubernetes import install as manifests

    if print_ == (write is not None):
        raise typer.BadParameter("give exactly one of --print and --write DIR", param_hint="--print/--write")
    namespace = namespace or manifests.DEFAULT_NAMESPACE
    if not _DNS_LABEL.match(namespace):
        raise typer.BadParameter(f"{namespace!r} is not a valid namespace name (a DNS label)", param_hint="--namespace")
    image = image or manifests.DEFAULT_IMAGE
    if any(c.isspace() for c in image):
        raise typer.BadParameter(f"{image!r} is not an image reference", param_hint="--image")
    if prometheus_url and not _HTTP_URL.match(prometheus_url):
        raise typer.BadParameter(f"{prometheus_url!r} is not an http(s) URL", param_hint="--prometheus-url")
    if write is None:
        typer.echo(manifests.dump(manifests.objects(namespace, image, prometheus_url)), nl=False)
        return
    if write.exists() and not write.is_dir():
        raise CliError(f"{write}: not a directory")
    try:
        written = manifests.write(write, namespace, image, prometheus_url)
    except OSError as exc:
        raise CliError(f"{exc.filename or write}: {exc.strerror or exc}") from None
    typer.echo(f"wrote {len(written)} files to {write} (kubectl apply -k {write})")
