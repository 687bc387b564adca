"""Talk to a Kubernetes cluster for the CLI: a lightkube client from the kubeconfig, the Rollwise
resource classes, the command annotation the controller answers, and every failure turned into
one line a person can act on."""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
from lightkube import ApiError, Client, ConfigError, KubeConfig
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.types import PatchType

from rollwise import __version__
from rollwise.cli.errors import CliError
from rollwise.cli.platform import KubeTarget

API_GROUP = "rollwise.dev"  # spelled out: importing rollwise.spec would load every model
VERSION = "v1alpha1"
# Writes by the CLI are owned by this field manager; the controller's are "rollwise".
FIELD_MANAGER = "rollwise-cli"
COMMAND_ANNOTATION = "rollwise.dev/command"
USER_AGENT = f"rollwise-cli/{__version__}"
ROLLOUT_LABEL = "rollwise.dev/rollout"
REVISION_LABEL = "rollwise.dev/revision"

Rollout = create_namespaced_resource(API_GROUP, VERSION, "Rollout", "rollouts")
AnalysisTemplate = create_namespaced_resource(API_GROUP, VERSION, "AnalysisTemplate", "analysistemplates")
ClusterAnalysisTemplate = create_global_resource(
    API_GROUP, VERSION, "ClusterAnalysisTemplate", "clusteranalysistemplates"
)
AnalysisRun = create_namespaced_resource(API_GROUP, VERSION, "AnalysisRun", "analysisruns")
FlagSet = create_namespaced_resource(API_GROUP, VERSION, "FlagSet", "flagsets")


def load_config(target: KubeTarget) -> KubeConfig:
    """The kubeconfig as kubectl finds it: --kubeconfig, $KUBECONFIG (its first file),
    ~/.kube/config, then the in-cluster service account."""
    try:
        if target.kubeconfig is not None:
            if not target.kubeconfig.is_file():
                raise CliError(f"{target.kubeconfig}: no such kubeconfig file")
            return KubeConfig.from_file(target.kubeconfig)
        env = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
        for path in env:
            if Path(path).expanduser().is_file():
                return KubeConfig.from_file(Path(path).expanduser())
        default = Path("~/.kube/config").expanduser()
        if default.is_file():
            return KubeConfig.from_file(default)
        try:
            return KubeConfig.from_service_account()
        except ConfigError:
            pass
    except ConfigError as exc:
        raise CliError(f"kubeconfig: {exc}") from None
    except (OSError, ValueError) as exc:
        raise CliError(f"kubeconfig: cannot read it ({exc})") from None
    where = f"$KUBECONFIG ({os.environ['KUBECONFIG']})" if env else "~/.kube/config"
    raise CliError(f"no kubeconfig found at {where} and not running in a cluster; give --kubeconfig FILE")


def as_dict(obj: Any) -> dict[str, Any]:
    """A lightkube object as plain JSON data (lightkube's to_dict is untyped)."""
    return dict(obj.to_dict())


class Cluster:
    """A lightkube client for one target, with the namespace it resolved to."""

    def __init__(self, target: KubeTarget, timeout: float = 30.0) -> None:
        config = load_config(target)
        try:
            single = config.get(context_name=target.context)
        except ConfigError as exc:
            raise CliError(f"kubeconfig: {exc}") from None
        if single is None:
            raise CliError("kubeconfig: no context to use; give --context")
        self.server = single.cluster.server
        self.namespace = target.namespace or single.namespace or "default"
        try:
            self.client = Client(
                single, namespace=self.namespace, field_manager=FIELD_MANAGER, timeout=httpx2.Timeout(timeout)
            )
        except ConfigError as exc:
            raise CliError(f"kubeconfig: {exc}") from None
        # Say who is asking (in audit logs, and to tell the CLI from the controller in tests);
        # lightkube has no option for it, so it goes on its HTTP client.
        http = getattr(getattr(self.client, "_client", None), "_client", None)
        if http is not None:
            http.headers["User-Agent"] = USER_AGENT

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextlib.contextmanager
    def errors(self, what: str = "") -> Iterator[None]:
        """Turn API and connection failures into one line; `what` names the object for a 404."""
        try:
            yield
        except ApiError as exc:
            code = exc.status.code
            if code == 404 and what:
                raise CliError(f"{what} not found in namespace {self.namespace}") from None
            message = exc.status.message or exc.status.reason or f"the API server answered {code}"
            if code == 403:
                raise CliError(f"forbidden: {message}") from None
            raise CliError(message) from None
        except httpx2.TransportError as exc:
            raise CliError(f"cannot reach the API server at {self.server}: {exc}") from None

    def rollout(self, name: str) -> dict[str, Any]:
        """The Rollout as a plain dict."""
        with self.errors(f"rollout {name}"):
            obj = self.client.get(Rollout, name, namespace=self.namespace)
        return as_dict(obj)

    def send(self, name: str, verb: str, to_revision: int | None = None) -> str:
        """Write the command annotation (a merge patch) and return its id."""
        command_id = str(uuid.uuid4())
        body = {"id": command_id, "verb": verb, "toRevision": to_revision}
        patch = {"metadata": {"annotations": {COMMAND_ANNOTATION: json.dumps(body, separators=(",", ":"))}}}
        with self.errors(f"rollout {name}"):
            self.client.patch(Rollout, name, patch, namespace=self.namespace, patch_type=PatchType.MERGE)
        return command_id

    def wait_handled(self, name: str, command_id: str, timeout: float) -> dict[str, Any]:
        """Poll the Rollout until the controller reports the command handled; its status then."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            obj = self.rollout(name)
            status = obj.get("status") or {}
            if status.get("handledCommand") == command_id:
                return dict(status)
            if time.monotonic() >= deadline:
                raise CliError(
                    f"rollout {name}: the controller did not handle the command within {timeout:g}s; it stays "
                    f"pending in the {COMMAND_ANNOTATION} annotation (is the controller running? "
                    "kubectl get pods -n rollwise-system)"
                )
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 1.0)
