"""Where the cluster is: a kubeconfig file (and context) or, inside a Pod, the service account.
One lightkube configuration serves both lightkube (the controller's writes) and kopf (its
watches), so that they always talk to the same server with the same credentials."""

from __future__ import annotations

import os
from pathlib import Path

import kopf
from lightkube import KubeConfig
from lightkube.config.kubeconfig import SingleConfig
from lightkube.config.models import User


class ConnectionError(Exception):
    """No usable cluster configuration."""


def load_config(kubeconfig: str | None = None, context: str | None = None) -> SingleConfig:
    """`--kubeconfig`/`--context` when given; else $KUBECONFIG or ~/.kube/config when present; else
    the in-cluster service account."""
    path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or None
    default = Path.home() / ".kube" / "config"
    if path is None and context is None and not default.exists():
        try:
            config = KubeConfig.from_service_account().get()
        except Exception as exc:
            raise ConnectionError(f"no kubeconfig ({default} absent) and not inside a Pod: {exc}") from None
        assert config is not None
        return config
    file = Path(path) if path else default
    try:
        kube = KubeConfig.from_file(file)
    except (OSError, ValueError) as exc:
        raise ConnectionError(f"{file}: cannot read the kubeconfig: {exc}") from None
    try:
        config = kube.get(context_name=context)
    except Exception as exc:
        raise ConnectionError(f"{file}: context {context!r}: {exc}") from None
    if config is None:
        raise ConnectionError(f"{file}: no current context; give --context")
    return config


def kopf_connection(config: SingleConfig) -> kopf.ConnectionInfo:
    """The same cluster and credentials, as kopf's login result."""
    cluster, user = config.cluster, config.user or User()
    token = user.token
    if token is None and user.token_file:
        token = Path(user.token_file).read_text().strip()
    if user.exec is not None or user.auth_provider is not None:
        raise ConnectionError(
            "the kubeconfig user authenticates with an exec plugin or auth provider, which the controller's "
            "watches cannot use; give it a token or a client certificate"
        )
    return kopf.ConnectionInfo(
        server=cluster.server,
        default_namespace=config.namespace,
        ca_path=_abs(config, cluster.certificate_auth),
        ca_data=cluster.certificate_auth_data,
        insecure=cluster.insecure or None,
        username=user.username,
        password=user.password,
        scheme="Bearer" if token else None,
        token=token,
        certificate_path=_abs(config, user.client_cert),
        certificate_data=user.client_cert_data,
        private_key_path=_abs(config, user.client_key),
        private_key_data=user.client_key_data,
    )


def _abs(config: SingleConfig, path: str | None) -> str | None:
    if path is None:
        return None
    return str(config.abs_file(path)) if hasattr(config, "abs_file") else path
