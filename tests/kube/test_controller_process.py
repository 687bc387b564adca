"""`rollwise controller run` as a real process, outside a cluster: it reads a kubeconfig, takes
the Lease, serves /healthz and /metrics, carries a rollout out, and on SIGTERM stops and gives the
Lease up."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest
from lightkube import AsyncClient
from lightkube.resources.core_v1 import Namespace

from rollwise.testing.kubeapi import ApiServer
from tests.kube.controller_harness import NS, ReadinessDriver, replicasets, settle
from tests.kube.test_controller import create, healthy, revision_of, spec

pytestmark = pytest.mark.asyncio


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def lease_holder(api: ApiServer) -> str | None:
    lease = api.get_object("coordination.k8s.io/v1", "Lease", NS, "rollwise-controller")
    return None if lease is None else lease["spec"].get("holderIdentity")


async def test_controller_run_as_a_process(api: ApiServer, client: AsyncClient, tmp_path: Path) -> None:
    await client.get(Namespace, NS)
    kubeconfig = tmp_path / "kubeconfig"
    server = str(api.url).rstrip("/")
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
        f"clusters:\n- name: test\n  cluster:\n    server: {server}\n"
        "users:\n- name: test\n  user: {}\n"
        "contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: default\n"
    )
    health, metrics = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("POD_NAME", "POD_NAMESPACE", "KUBECONFIG")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rollwise.cli",
        "controller",
        "run",
        "--kubeconfig",
        str(kubeconfig),
        "-n",
        NS,
        "--identity",
        "proc-a",
        "--health-port",
        str(health),
        "--metrics-port",
        str(metrics),
        "--log-level",
        "warning",
        env={**env, "NO_PROXY": "*"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with ReadinessDriver(api, client):
            await settle(api, lambda: lease_holder(api) == "proc-a", timeout=60)
            doc = spec({"recreate": {}}, replicas=2)
            await create(client, "web", doc)
            await settle(api, lambda: healthy(api, "web", revision_of(doc)), timeout=60)
            assert replicasets(api, "web") == {revision_of(doc): 2}
            async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
                assert (await http.get(f"http://127.0.0.1:{health}/healthz")).text == "ok\n"
                text = (await http.get(f"http://127.0.0.1:{metrics}/metrics")).text
            assert "rollwise_controller_leading 1\n" in text
            assert "rollwise_controller_rollouts 1\n" in text
            # Every reconcile so far is in the duration histogram, and its count is the +Inf bucket.
            count = next(
                ln for ln in text.splitlines() if ln.startswith("rollwise_controller_reconcile_duration_seconds_count")
            )
            assert int(count.split()[1]) >= 1
            assert f'rollwise_controller_reconcile_duration_seconds_bucket{{le="+Inf"}} {count.split()[1]}\n' in text
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                out, _ = await proc.communicate()
        assert proc.returncode == 0, out.decode()
        assert lease_holder(api) is None  # given up at once for a standby to take
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
