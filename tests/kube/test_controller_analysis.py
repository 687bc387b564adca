"""Analysis runs in the controller: a canary's analysis step measured by a webhook metric (a real
HTTP endpoint on 127.0.0.1) from an AnalysisTemplate read from the API; success moves on, failure
aborts, a missing template pauses the rollout (no evidence either way)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from lightkube import AsyncClient
from lightkube.resources.core_v1 import Namespace

from rollwise.platforms.kubernetes.names import AnalysisTemplate
from rollwise.testing.kubeapi import ApiServer
from tests.kube.controller_harness import (
    NS,
    STABLE_AND_CANARY,
    ControllerThread,
    ReadinessDriver,
    command,
    controller_running,
    events,
    replicasets,
    settle,
    status,
    weights,
)
from tests.kube.test_controller import create, healthy, revision_of, service, set_image, spec, step

pytestmark = pytest.mark.asyncio


class Check:
    """A health endpoint whose answer the test sets: {"ok": true|false}; it counts the requests."""

    def __init__(self) -> None:
        self.ok = True
        self.requests = 0
        self.gate = asyncio.Event()  # answers wait for it
        self.gate.set()
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/check"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        self.requests += 1
        await self.gate.wait()
        body = json.dumps({"ok": self.ok}).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()


@pytest_asyncio.fixture
async def check() -> AsyncIterator[Check]:
    c = Check()
    c.server = await asyncio.start_server(c.handle, "127.0.0.1", 0)
    try:
        yield c
    finally:
        c.server.close()
        with contextlib.suppress(Exception):
            await c.server.wait_closed()


@pytest_asyncio.fixture
async def running(api: ApiServer, client: AsyncClient) -> AsyncIterator[ReadinessDriver]:
    async with controller_running(api, client, STABLE_AND_CANARY) as (_, driver):
        yield driver


async def template(client: AsyncClient, url: str) -> None:
    await client.create(
        AnalysisTemplate.from_dict(
            {
                "apiVersion": "rollwise.dev/v1alpha1",
                "kind": "AnalysisTemplate",
                "metadata": {"name": "check", "namespace": NS},
                "spec": {
                    "args": [{"name": "revision"}],
                    "metrics": [
                        {
                            "name": "ok",
                            "successCondition": "result == true",
                            "provider": {"webhook": {"url": url + "?rev={{args.revision}}", "jsonPath": "$.ok"}},
                        }
                    ],
                },
            }
        )
    )


def analysed(image: str) -> dict[str, Any]:
    steps = [
        {"setWeight": 25},
        {
            "analysis": {
                "templates": [{"templateName": "check"}],
                "args": [{"name": "revision", "valueFrom": {"fieldRef": {"fieldPath": "status.currentRevision"}}}],
            }
        },
        {"setWeight": 50},
        {"pause": {}},
    ]
    strategy = {"canary": {"stableService": "web-stable", "canaryService": "web-canary", "steps": steps}}
    return spec(strategy, image=image)


async def test_a_passing_analysis_step_moves_on_and_a_failing_one_aborts(
    api: ApiServer, client: AsyncClient, running: ReadinessDriver, check: Check
) -> None:
    await template(client, check.url)
    doc = analysed("example/app:1.0")
    v1 = revision_of(doc)
    await create(client, "web", doc)
    await settle(api, lambda: healthy(api, "web", v1))

    doc2 = await set_image(client, "web", doc, "example/app:2.0")
    v2 = revision_of(doc2)
    await settle(api, lambda: step(api, "web") == 3 and weights(api, "web") == {v1: 50, v2: 50})
    assert check.requests >= 1
    runs = status(api, "web")["analysisRuns"]
    assert [(r["kind"], r["verdict"]) for r in runs] == [("step", "Successful")]
    assert any(e[1] == "AnalysisSuccessful" for e in events(api, "web"))
    await command(client, "web", "promote")
    await settle(api, lambda: healthy(api, "web", v2))

    check.ok = False
    doc3 = await set_image(client, "web", doc2, "example/app:3.0")
    v3 = revision_of(doc3)
    await settle(api, lambda: status(api, "web").get("phase") == "Aborted")
    await settle(api, lambda: replicasets(api, "web") == {v1: 0, v2: 4, v3: 0})
    assert status(api, "web")["abort"]["revision"] == v3
    assert any(e[0] == "Warning" and e[1] == "AnalysisFailed" for e in events(api, "web"))


async def test_a_missing_template_pauses_for_a_human(
    api: ApiServer, client: AsyncClient, running: ReadinessDriver, check: Check
) -> None:
    doc = analysed("example/app:1.0")
    v1 = revision_of(doc)
    await create(client, "web", doc)
    await settle(api, lambda: healthy(api, "web", v1))
    await set_image(client, "web", doc, "example/app:2.0")
    await settle(api, lambda: status(api, "web").get("phase") == "Paused" and step(api, "web") == 1)
    assert "AnalysisError" in {p["reason"] for p in status(api, "web")["pauseConditions"]}
    runs = status(api, "web")["analysisRuns"]
    assert runs[0]["verdict"] == "Error"
    assert any("AnalysisTemplate 'check' not found" in e[2] for e in events(api, "web"))

    # Created, then resumed: the analysis runs again under a new name and passes.
    await template(client, check.url)
    await command(client, "web", "resume")
    await settle(api, lambda: step(api, "web") == 3)
    assert [r["verdict"] for r in status(api, "web")["analysisRuns"]][-1] == "Successful"


async def test_a_run_in_flight_when_the_controller_stops_is_measured_again_by_the_next(
    api: ApiServer, client: AsyncClient, check: Check
) -> None:
    await client.get(Namespace, NS)
    await service(client, "web-stable")
    await service(client, "web-canary")
    await template(client, check.url)
    doc = analysed("example/app:1.0")
    v1 = revision_of(doc)
    async with ReadinessDriver(api, client):
        first = ControllerThread(api).start()
        try:
            await first.wait_started()
            await create(client, "web", doc)
            await settle(api, lambda: healthy(api, "web", v1))
            check.gate.clear()  # the measurement hangs
            doc2 = await set_image(client, "web", doc, "example/app:2.0")
            v2 = revision_of(doc2)
            await settle(api, lambda: step(api, "web") == 1 and bool(status(api, "web").get("analysisRuns")))
            async with asyncio.timeout(20):
                while check.requests == 0:
                    await asyncio.sleep(0.02)  # the request arrives over a socket, not through the API
        finally:
            await first.stop()
        (run,) = status(api, "web")["analysisRuns"]
        assert run["verdict"] in ("Pending", "Running")
        asked = check.requests

        second = ControllerThread(api).start()
        try:
            await second.wait_started()
            async with asyncio.timeout(20):
                while check.requests == asked:
                    await asyncio.sleep(0.02)
            check.gate.set()
            await settle(api, lambda: step(api, "web") == 3 and weights(api, "web") == {v1: 50, v2: 50})
            (again,) = status(api, "web")["analysisRuns"]
            assert again["name"] == run["name"] and again["verdict"] == "Successful"
        finally:
            await second.stop()
