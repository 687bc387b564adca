"""What the controller asked the API server for, collected across tests for the RBAC test.

Every `api` fixture hands its audit log here (conftest.py). A request is the controller's when it
comes from a controller test module (tests/kube/test_controller*.py) and from the controller's own
clients: kopf ("kopf/<version>") or its lightkube client (lightkube's default "python-httpx2/...";
the tests' own lightkube client says "rollwise-tests", the CLI "rollwise-cli/...").

The RBAC test (test_rbac.py) runs last in a session (conftest.py moves it there). When the session
ran every controller test, it reads what they collected; otherwise it runs them in a subprocess,
which writes its collection to the file named by $ROLLWISE_RBAC_AUDIT_OUT at the end."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import pytest

from rollwise.platforms.kubernetes.install import Rule
from rollwise.testing.kubeapi import AuditRecord

TESTS = Path(__file__).resolve().parent
CONTROLLER_MODULES = "test_controller"
TEST_AGENT = "rollwise-tests"
CONTROLLER_AGENTS = ("kopf/", "python-httpx2/", "rollwise-controller/")
OUT_ENV = "ROLLWISE_RBAC_AUDIT_OUT"

Use = tuple[str, str, str, str]  # (group, resource, subresource, verb)

RECORDS: list[tuple[str, AuditRecord]] = []
_finished: set[str] = set()
_failed: set[str] = set()
_collected: set[str] = set()


def is_controller_test(nodeid: str) -> bool:
    module = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
    return module.startswith(CONTROLLER_MODULES)


def controller_files() -> list[Path]:
    return sorted(TESTS.glob(f"{CONTROLLER_MODULES}*.py"))


def collect(nodeid: str, audit: list[AuditRecord]) -> None:
    if is_controller_test(nodeid):
        RECORDS.extend((nodeid, r) for r in audit if r.user_agent.startswith(CONTROLLER_AGENTS))


def uses(records: list[tuple[str, AuditRecord]]) -> dict[Use, str]:
    """Each (group, resource, subresource, verb) used, with one test that used it."""
    out: dict[Use, str] = {}
    for nodeid, r in records:
        out.setdefault((r.group, r.resource, r.subresource, r.verb), nodeid)
    return out


def grants(rules: tuple[Rule, ...]) -> set[Use]:
    out = set()
    for rule in rules:
        for resource in rule.resources:
            plural, _, sub = resource.partition("/")
            for verb in rule.verbs:
                out.add((rule.group, plural, sub, verb))
    return out


# --- session bookkeeping (called from conftest.py hooks) -------------------------------------------


def run_last(items: list[pytest.Item]) -> None:
    """Move the RBAC test to the end, and remember which controller tests this session has."""
    _collected.update(i.nodeid for i in items if is_controller_test(i.nodeid))
    last = [i for i in items if i.nodeid.split("::", 1)[0].endswith("test_rbac.py")]
    if last:
        items[:] = [i for i in items if i not in last] + last


def finished(report: pytest.TestReport) -> None:
    if is_controller_test(report.nodeid) and (report.when == "call" or report.outcome != "passed"):
        _finished.add(report.nodeid)
        if report.outcome == "failed":
            _failed.add(report.nodeid)


def session_ran_all() -> bool:
    """Did this session run every test of every controller test module?"""
    files = {p.name for p in controller_files()}
    seen = {n.split("::", 1)[0].rsplit("/", 1)[-1] for n in _collected}
    return bool(files) and files <= seen and _collected <= _finished


def session_failures() -> list[str]:
    return sorted(_failed)


def dump_if_asked() -> None:
    out = os.environ.get(OUT_ENV)
    if out:
        Path(out).write_text(json.dumps([[nodeid, asdict(r)] for nodeid, r in RECORDS]))


def load(path: Path) -> list[tuple[str, AuditRecord]]:
    return [(nodeid, AuditRecord(**r)) for nodeid, r in json.loads(path.read_text())]
