"""Fixtures for tests against the emulated Kubernetes API server (rollwise.testing.kubeapi)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from lightkube import AsyncClient

from rollwise.testing.kubeapi import ApiServer, rollwise_crds, serve, shared_crd_files
from rollwise.testing.kubeapi.crds import find_shared_crds
from tests.kube import rbac_audit
from tests.kube.helpers import kubeconfig

ROOT = Path(__file__).resolve().parents[2]
SHARED_CRDS = find_shared_crds(ROOT)
MISSING_SHARED = (
    f"the upstream Istio/Gateway API CRDs were not found at {ROOT.parent / 'shared' / 'crds'} "
    "(shared/ beside the repository) nor in $ROLLWISE_SHARED_CRDS"
)


@pytest.fixture
def shared_crds() -> Path:
    """The directory with the upstream CRDs. Under CI a missing one fails the test."""
    if SHARED_CRDS is None:
        if os.environ.get("CI") == "true":
            pytest.fail(MISSING_SHARED)
        pytest.skip(MISSING_SHARED)
    return SHARED_CRDS


@pytest_asyncio.fixture
async def api(request: pytest.FixtureRequest) -> AsyncIterator[ApiServer]:
    """An emulated API server with Rollwise's CRDs, and the upstream ones when present. Fails the
    test if the emulator itself raised (a 500 from a bug, not an API error). Its audit log goes
    to the RBAC test's collection (rbac_audit.py)."""
    async with serve() as server:
        server.add_crds(rollwise_crds())
        if SHARED_CRDS is not None:
            server.add_crds(shared_crd_files(SHARED_CRDS))
        yield server
        rbac_audit.collect(request.node.nodeid, server.audit)
        assert not server.errors, server.errors


@pytest_asyncio.fixture
async def client(api: ApiServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(kubeconfig(api), trust_env=False, field_manager="tests") as c:
        # The tests' own requests must not count as the controller's in the RBAC test.
        c._client._client.headers["User-Agent"] = rbac_audit.TEST_AGENT
        yield c


@pytest_asyncio.fixture
async def http(api: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client, for what lightkube does not expose (discovery, raw selectors, headers)."""
    async with httpx.AsyncClient(base_url=str(api.url).rstrip("/"), trust_env=False, timeout=10) as c:
        yield c


# --- the RBAC test's collection (rbac_audit.py) -----------------------------------------------------


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rbac_audit.run_last(items)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    rbac_audit.finished(report)


def pytest_sessionfinish(session: pytest.Session) -> None:
    rbac_audit.dump_if_asked()
