"""The controller's ClusterRole and Role are least privilege: every request the controller makes in
the controller tests (tests/kube/test_controller*.py) is granted, and every grant is used there —
or listed below, with why it is granted, exactly when no controller test reaches it yet.

The requests are collected from the emulated API server's audit log (rbac_audit.py); this module
runs last in a session. When the session did not run every controller test (this file alone, or
a -k selection), it runs them itself in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rollwise.platforms.kubernetes.install import CLUSTER_RULES, NAMESPACE_RULES, Rule
from rollwise.testing.kubeapi import AuditRecord
from tests.kube import rbac_audit
from tests.kube.rbac_audit import Use

ROOT = Path(__file__).resolve().parents[2]

# Grants no controller test reaches yet, each with why the controller needs it and which code makes
# the request: exactly those (an entry a controller test comes to use fails the test below, so that
# the list never keeps a grant that is tested already). Every grant is exercised today.
NOT_YET_EXERCISED: dict[Use, str] = {}


def requests_needed(records: list[tuple[str, AuditRecord]]) -> dict[Use, str]:
    """What RBAC checks for each request: its verb, plus `create` for a patch (server-side apply)
    that created the object, as the API server authorizes both."""
    out = rbac_audit.uses(records)
    for nodeid, r in records:
        if r.verb == "patch" and r.code == 201:
            out.setdefault((r.group, r.resource, r.subresource, "create"), nodeid)
    return out


def controller_requests(tmp_path: Path) -> tuple[list[tuple[str, AuditRecord]], str]:
    """The controller's requests, and why they may be incomplete ("" when every test passed)."""
    if rbac_audit.session_ran_all():
        failures = rbac_audit.session_failures()
        return list(rbac_audit.RECORDS), f"{len(failures)} failed: {', '.join(failures)}" if failures else ""
    out = tmp_path / "audit.json"
    files = [str(p.relative_to(ROOT)) for p in rbac_audit.controller_files()]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
        cwd=ROOT,
        env={**os.environ, rbac_audit.OUT_ENV: str(out)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    failed = "" if proc.returncode == 0 else proc.stdout.strip().splitlines()[-1]
    return rbac_audit.load(out), failed


def test_grants_are_the_requests_the_controller_makes(tmp_path: Path) -> None:
    if not rbac_audit.controller_files():
        pytest.skip("no controller tests (tests/kube/test_controller*.py) to observe")
    records, failed = controller_requests(tmp_path)
    used = requests_needed(records)
    assert used, "the controller tests made no request the controller's clients are known by"
    granted = rbac_audit.grants(CLUSTER_RULES + NAMESPACE_RULES)

    missing = {u: test for u, test in used.items() if u not in granted}
    assert not missing, (
        "requests the ClusterRole/Role does not grant (group, resource, subresource, verb): "
        + "; ".join(f"{u} in {test}" for u, test in sorted(missing.items()))
    )
    stale = sorted(u for u in NOT_YET_EXERCISED if u not in granted)
    assert not stale, f"NOT_YET_EXERCISED lists what install.py does not grant: {stale}"
    exercised = {u: used[u] for u in NOT_YET_EXERCISED if u in used}
    assert not exercised, "NOT_YET_EXERCISED lists grants the controller tests use now (remove them): " + "; ".join(
        f"{u} in {test}" for u, test in sorted(exercised.items())
    )
    if failed:
        # Every request seen is granted; whether every grant is used needs every test's requests.
        pytest.skip(f"controller tests failed ({failed}): the unused-grant check needs them all passing")
    unused = sorted(u for u in granted if u not in used and u not in NOT_YET_EXERCISED)
    assert not unused, f"granted but never used by the controller (drop them from install.py): {unused}"


def test_controller_namespace_rules_hold_only_leader_election() -> None:
    assert rbac_audit.grants(NAMESPACE_RULES) == {
        ("coordination.k8s.io", "leases", "", verb) for verb in ("get", "create", "update")
    }


def test_the_collection_counts_an_apply_that_creates_as_create() -> None:
    records = [
        ("t::a", AuditRecord("patch", "apps", "replicasets", "", "default", "web-a1", 201, "python-httpx2/2")),
        ("t::b", AuditRecord("patch", "apps", "replicasets", "", "default", "web-a1", 200, "python-httpx2/2")),
        ("t::c", AuditRecord("watch", "", "secrets", "", "", "", 200, "kopf/1.45")),
    ]
    assert set(requests_needed(records)) == {
        ("apps", "replicasets", "", "patch"),
        ("apps", "replicasets", "", "create"),
        ("", "secrets", "", "watch"),
    }
    assert rbac_audit.grants((Rule("", ("rollouts/status", "pods"), ("get",)),)) == {
        ("", "rollouts", "status", "get"),
        ("", "pods", "", "get"),
    }


def test_only_the_controllers_requests_in_controller_tests_are_collected() -> None:
    before = len(rbac_audit.RECORDS)
    records = [
        AuditRecord("get", "", "pods", "", "default", "x", 200, rbac_audit.TEST_AGENT),
        AuditRecord("get", "", "pods", "", "default", "x", 200, "rollwise-cli/0.1.0"),
        AuditRecord("list", "", "pods", "", "default", "", 200, "kopf/1.45.2"),
    ]
    try:
        rbac_audit.collect("tests/kube/test_kopf.py::test_x", records)
        assert len(rbac_audit.RECORDS) == before
        rbac_audit.collect("tests/kube/test_controller.py::test_x", records)
        assert [r.user_agent for _, r in rbac_audit.RECORDS[before:]] == ["kopf/1.45.2"]
    finally:
        del rbac_audit.RECORDS[before:]
