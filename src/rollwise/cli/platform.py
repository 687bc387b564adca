"""Which platform a verb talks to, and one command per verb for both.

The rule: a verb talks to a Kubernetes cluster when `--platform kubernetes` is given (or
ROLLWISE_PLATFORM=kubernetes is set), or when any of `--kubeconfig`, `--context` or
`--namespace/-n` is given; otherwise it talks to the local control plane of `--dir`.
`--platform local` together with a Kubernetes option is a usage error.

`both(local, cluster)` makes one typer command out of a local verb and its cluster counterpart:
the local verb's own parameters (read from its signature, so the two never drift), plus the
Kubernetes options, plus any cluster-only options; the cluster function receives the target and
whichever of those parameters it names."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

PLATFORM_ENV = "ROLLWISE_PLATFORM"
PLATFORMS = ("local", "kubernetes")


@dataclass(frozen=True)
class KubeTarget:
    """Where a verb talks to Kubernetes: kubeconfig file (None: $KUBECONFIG, ~/.kube/config, or the
    in-cluster service account), context (None: the current one) and namespace (None: the
    context's, else "default")."""

    kubeconfig: Path | None = None
    context: str | None = None
    namespace: str | None = None


def resolve(
    platform: str | None, kubeconfig: Path | None, context: str | None, namespace: str | None
) -> KubeTarget | None:
    """The Kubernetes target, or None for the local platform (see the module's rule)."""
    platform = (platform or "").strip().lower() or None
    if platform is not None and platform not in PLATFORMS:
        raise typer.BadParameter(f"{platform!r}: must be local or kubernetes", param_hint=f"--platform/${PLATFORM_ENV}")
    kube_options = [
        name
        for name, value in (("--kubeconfig", kubeconfig), ("--context", context), ("--namespace", namespace))
        if value
    ]
    if platform == "local":
        if kube_options:
            raise typer.BadParameter(
                f"{', '.join(kube_options)} applies to Kubernetes, not to --platform local", param_hint=kube_options[0]
            )
        return None
    if platform == "kubernetes" or kube_options:
        return KubeTarget(kubeconfig, context or None, namespace or None)
    return None


def _option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)


KUBE_PARAMETERS: tuple[inspect.Parameter, ...] = (
    _option(
        "kube_platform",
        Annotated[
            str | None,
            typer.Option(
                "--platform",
                envvar=PLATFORM_ENV,
                help="local or kubernetes (default: kubernetes when a Kubernetes option is given, else local).",
                rich_help_panel="Platform",
            ),
        ],
        None,
    ),
    _option(
        "kube_config",
        Annotated[
            Path | None,
            typer.Option(
                "--kubeconfig",
                help="Kubernetes: kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster).",
                rich_help_panel="Platform",
            ),
        ],
        None,
    ),
    _option(
        "kube_context",
        Annotated[
            str | None,
            typer.Option("--context", help="Kubernetes: kubeconfig context.", rich_help_panel="Platform"),
        ],
        None,
    ),
    _option(
        "kube_namespace",
        Annotated[
            str | None,
            typer.Option(
                "--namespace", "-n", help="Kubernetes: namespace (default: the context's).", rich_help_panel="Platform"
            ),
        ],
        None,
    ),
)
_KUBE_NAMES = tuple(p.name for p in KUBE_PARAMETERS)


def cluster_option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    """A parameter only the cluster side of a verb has (refused on the local platform)."""
    return _option(name, annotation, default)


def both(
    local: Callable[..., Any],
    cluster: Callable[..., Any],
    extra: Sequence[inspect.Parameter] = (),
) -> Callable[..., Any]:
    local_sig = inspect.signature(local, eval_str=True)
    cluster_names = set(inspect.signature(cluster).parameters) - {"target"}
    params = [*local_sig.parameters.values(), *extra, *KUBE_PARAMETERS]

    def command(**kwargs: Any) -> Any:
        target = resolve(*(kwargs.pop(n) for n in _KUBE_NAMES))
        extras = {p.name: kwargs.pop(p.name) for p in extra}
        if target is None:
            for p in extra:
                if extras[p.name] != p.default:
                    option = p.name.replace("_", "-")
                    raise typer.BadParameter("applies to Kubernetes only", param_hint=f"--{option}")
            return local(**kwargs)
        given = {**kwargs, **extras}
        return cluster(target, **{k: v for k, v in given.items() if k in cluster_names})

    command.__name__ = local.__name__
    command.__qualname__ = local.__qualname__
    command.__doc__ = local.__doc__
    command.__module__ = local.__module__
    command.__signature__ = local_sig.replace(parameters=params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command


def cluster_only(cluster: Callable[..., Any], what: str) -> Callable[..., Any]:
    """A verb that exists on Kubernetes only; on the local platform it says what to use instead."""
    sig = inspect.signature(cluster, eval_str=True)
    own = [p for p in sig.parameters.values() if p.name != "target"]
    params = [*own, *KUBE_PARAMETERS]

    def command(**kwargs: Any) -> Any:
        target = resolve(*(kwargs.pop(n) for n in _KUBE_NAMES))
        if target is None:
            raise typer.BadParameter(
                f"{what} (give --context, --kubeconfig, -n or --platform kubernetes)", param_hint="--platform"
            )
        return cluster(target, **kwargs)

    command.__name__ = cluster.__name__
    command.__qualname__ = cluster.__qualname__
    command.__doc__ = cluster.__doc__
    command.__module__ = cluster.__module__
    command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command
