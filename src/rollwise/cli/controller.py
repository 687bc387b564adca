"""`rollwise controller run`: the Kubernetes controller, in a cluster (service account) or outside
one (kubeconfig). Replicas elect a leader with a Lease; only the leader acts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from typing import Annotated

import typer

from rollwise.cli.errors import CliError

app = typer.Typer(help="The Kubernetes controller.", no_args_is_help=True)


@app.command("run")
def run(
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Watch only this namespace (repeat for more); default: all."),
    ] = None,
    kubeconfig: Annotated[
        str | None,
        typer.Option("--kubeconfig", help="Kubeconfig file; default: $KUBECONFIG, ~/.kube/config, or in-cluster."),
    ] = None,
    context: Annotated[str | None, typer.Option("--context", help="Kubeconfig context; default: the current.")] = None,
    lease: Annotated[str, typer.Option("--lease", help="Name of the leader-election Lease.")] = "rollwise-controller",
    lease_namespace: Annotated[
        str | None,
        typer.Option(
            "--lease-namespace", envvar="POD_NAMESPACE", help="Namespace of the Lease; default: the context's."
        ),
    ] = None,
    identity: Annotated[
        str | None, typer.Option("--identity", envvar="POD_NAME", help="This replica's name in the Lease.")
    ] = None,
    health_port: Annotated[
        int, typer.Option("--health-port", min=0, max=65535, help="/healthz port (0: none).")
    ] = 8080,
    metrics_port: Annotated[
        int, typer.Option("--metrics-port", min=0, max=65535, help="/metrics port (0: none).")
    ] = 9090,
    resync: Annotated[
        float, typer.Option("--resync-seconds", min=1, help="Look at every rollout this often (±10%).")
    ] = 600,
    prometheus_url: Annotated[
        str | None,
        typer.Option(
            "--prometheus-url",
            envvar="ROLLWISE_PROMETHEUS_URL",
            help="Prometheus holding the router's metrics: builtin metrics, dynamic canaries, A/B winners.",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the controller until SIGTERM or SIGINT; exit 1 if the lease is lost to another replica."""
    from rollwise.platforms.kubernetes.connection import ConnectionError as NoCluster
    from rollwise.platforms.kubernetes.connection import load_config
    from rollwise.platforms.kubernetes.operator import LeadershipLost, Settings

    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        raise typer.BadParameter("must be debug, info, warning or error", param_hint="--log-level")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(kubeconfig, context)
    except NoCluster as exc:
        raise CliError(str(exc)) from None
    settings = Settings(
        namespaces=list(namespace or []),
        identity=identity or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}",
        lease_namespace=lease_namespace or config.namespace or "default",
        lease_name=lease,
        resync_seconds=resync,
        prometheus_url=prometheus_url,
    )
    try:
        asyncio.run(_main(config, settings, health_port, metrics_port))
    except LeadershipLost as exc:
        raise CliError(f"{exc}: stopping (another replica leads now)") from None
    except OSError as exc:
        raise CliError(f"cannot serve the probes: {exc}") from None


async def _main(config: object, settings: object, health_port: int, metrics_port: int) -> None:
    from lightkube.config.kubeconfig import SingleConfig

    from rollwise.platforms.kubernetes.endpoints import serve
    from rollwise.platforms.kubernetes.operator import Probe, Settings
    from rollwise.platforms.kubernetes.operator import run as run_controller

    assert isinstance(config, SingleConfig) and isinstance(settings, Settings)
    stop, started = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signals() -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)

    async def reclaim_signals() -> None:
        # kopf takes SIGTERM/SIGINT for itself when it starts; they must stop the workers first
        # (a reconcile finishes), then kopf, then give the lease up.
        await started.wait()
        on_signals()

    on_signals()
    reclaim = asyncio.create_task(reclaim_signals())
    probe = Probe()
    servers = []
    if health_port:
        servers.append(await serve(probe, health_port, "/healthz"))
    if metrics_port:
        servers.append(await serve(probe, metrics_port, "/metrics"))
    logging.getLogger("rollwise.controller").info(
        "controller %s (pid %d) waiting for lease %s/%s",
        settings.identity,
        os.getpid(),
        settings.lease_namespace,
        settings.lease_name,
    )
    try:
        await run_controller(config, settings, stop, started=started, probe=probe)
    finally:
        reclaim.cancel()
        for server in servers:
            server.close()
