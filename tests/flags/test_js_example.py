"""The JavaScript wiring of docs/flags.md, run for real: examples/flags-js installed with npm into a
temporary directory, started with node, reading a flags file written the way the local platform
writes it, and following a change of it without a restart. Needs node and npm (and the npm
registry); under CI they must be there (scripts/system-deps.sh installs them)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import mmh3
import pytest

from rollwise.platforms.local.daemon.flags_files import write_flagset
from rollwise.spec.flags import FlagSet
from tests.flags.sdk import Evaluator
from tests.procs import wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flags-js"
NODE, NPM = shutil.which("node"), shutil.which("npm")


def flagset(greeting: dict[str, object]) -> FlagSet:
    return FlagSet.model_validate(
        {
            "apiVersion": "rollwise.dev/v1alpha1",
            "kind": "FlagSet",
            "metadata": {"name": "web-flags"},
            "spec": {"flags": {"new-greeting": {"variants": {"on": True, "off": False}, **greeting}}},
        }
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if NODE is None or NPM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node and npm are needed under CI (scripts/system-deps.sh installs them)")
        pytest.skip("node and npm are not installed")
    app = tmp_path_factory.mktemp("flags-js")
    for name in ("package.json", "package-lock.json", "app.js"):
        shutil.copy(EXAMPLE / name, app / name)
    done = subprocess.run(
        [NPM, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=app,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"npm ci failed: {done.stderr[-2000:]}"
    return app


class App:
    def __init__(self, app: Path, flags_file: Path) -> None:
        assert NODE is not None
        env = {**os.environ, "FLAGD_OFFLINE_FLAG_SOURCE_PATH": str(flags_file), "PORT": "0", "HOST": "127.0.0.1"}
        self.proc = subprocess.Popen(
            [NODE, "app.js"], cwd=app, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the app's first line, once it listens (or why it failed)
        assert line.startswith("listening on "), f"the app did not start: {line}{self.proc.stdout.read()}"
        self.port = int(line.split()[-1])

    def greeting(self, user: str) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", f"/?user={user}")
            resp = conn.getresponse()
            assert resp.status == 200
            return str(json.loads(resp.read())["greeting"])
        finally:
            conn.close()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def app(installed: Path, state_dir: Path) -> Iterator[App]:
    path = write_flagset(state_dir, flagset({"defaultVariant": "off"}))
    a = App(installed, path)
    try:
        yield a
    finally:
        a.stop()


def test_the_js_app_reads_the_flag_and_follows_a_change_without_restart(app: App, state_dir: Path) -> None:
    users = [f"user-{i}" for i in range(20)]
    assert {app.greeting(u) for u in users} == {"hello"}
    pid = app.proc.pid

    write_flagset(state_dir, flagset({"defaultVariant": "on"}))
    wait_for(lambda: {app.greeting(u) for u in users} == {"hello, new world"}, timeout=60, what="the change")
    assert app.proc.poll() is None and app.proc.pid == pid  # the same process, not restarted

    # A percentage split. This provider (flagd-core for JavaScript) buckets a user by MurmurHash3
    # of the string flagKey + targetingKey; the Python provider hashes the CBOR encoding of
    # [flagKey, targetingKey] instead, so the two put different users in the 30% (docs/flags.md).
    split = {"defaultVariant": "off", "targeting": {"fractional": [["on", 30], ["off", 70]]}}
    path = write_flagset(state_dir, flagset(split))
    sample = [f"user-{i}" for i in range(500)]
    expected = {u: "hello, new world" if js_bucket("new-greeting", u) < 30 else "hello" for u in sample}
    # Everyone had the flag: the split is in force once some users no longer do.
    wait_for(lambda: any(app.greeting(u) == "hello" for u in sample[:20]), timeout=60, what="the split")
    answers = {u: app.greeting(u) for u in sample}
    assert answers == expected
    share = sum(a == "hello, new world" for a in answers.values()) / len(sample)
    assert 0.25 < share < 0.35, share
    with Evaluator(path) as ev:
        python = {u: "hello, new world" if ev.boolean("new-greeting", u) else "hello" for u in sample}
    same = sum(python[u] == answers[u] for u in sample) / len(sample)
    print(f"JavaScript: {share:.1%} of {len(sample)} users on; the same variant as the Python provider for {same:.1%}")


def js_bucket(flag: str, user: str) -> int:
    """The bucket (0-99) flagd-core for JavaScript puts a user in, for weights adding up to 100."""
    return (mmh3.hash(f"{flag}{user}".encode(), signed=False) * 100) >> 32
