"""What `make demo` runs: the local platform releasing the demo service three times under load.

1. v1, 3 replicas, becomes stable.
2. v2 rolls out as a canary with analysis on the proxy's own counters, and is promoted.
3. v3 answers 30% of requests with errors; analysis aborts it and traffic returns to v2.

A bounded load generator keeps requests flowing the whole time; the summary counts what users
saw, by the version that answered, and how long v3's errors lasted."""

from __future__ import annotations

import argparse
import http.client
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console

from rollwise.cli.errors import CliError
from rollwise.cli.local_client import Client, daemon_info, rollout_path

NAME = "demo"

TEMPLATE = """
apiVersion: rollwise.dev/v1alpha1
kind: AnalysisTemplate
metadata:
  name: demo-health
spec:
  metrics:
    - name: success-rate
      provider:
        builtin:
          metric: success-rate
          window: 5s
      initialDelay: 2s
      interval: 2s
      successCondition: result >= 0.95
      failureLimit: 1
"""

ROLLOUT = """
apiVersion: rollwise.dev/v1alpha1
kind: Rollout
metadata:
  name: {name}
spec:
  replicas: 3
  process:
    command: [rollwise-demo]
    env:
      DEMO_VERSION: "{version}"
      DEMO_ERROR_RATE: "{error_rate}"
    terminationGracePeriodSeconds: 5
  strategy:
    canary:
      trafficRouting:
        local: {{}}
      analysis:
        templates: [{{templateName: demo-health}}]
        startingStep: 1
      steps:
        - setWeight: 20
        - pause: {{duration: 8s}}
        - setWeight: 50
        - pause: {{duration: 8s}}
"""


@dataclass
class Load:
    """Keep-alive clients at a bounded rate; every answer counted by the version that gave it."""

    host: str
    port: int
    rate: float = 200.0
    clients: int = 4
    by_version: Counter[str] = field(default_factory=Counter)
    errors_by_version: Counter[str] = field(default_factory=Counter)
    platform_errors: int = 0
    first_error_at: dict[str, float] = field(default_factory=dict)
    last_seen_at: dict[str, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._client, daemon=True) for _ in range(self.clients)]
        for t in threads:
            t.start()
        return threads

    def _client(self) -> None:
        interval = self.clients / self.rate
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        next_at = time.monotonic()
        while not self.stop.is_set():
            try:
                conn.request("GET", "/")
                resp = conn.getresponse()
                resp.read()
                self._count(resp.status, resp.getheader("X-Demo-Version"))
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                self._count(0, None)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)
            else:
                next_at = time.monotonic()
        conn.close()

    def _count(self, status: int, version: str | None) -> None:
        now = time.monotonic()
        with self.lock:
            if version is None:
                # No version header: the proxy itself answered (502/503/504) or the connection failed.
                self.platform_errors += 1
                return
            self.by_version[version] += 1
            self.last_seen_at[version] = now
            if status >= 500:
                self.errors_by_version[version] += 1
                self.first_error_at.setdefault(version, now)


def wait(what: str, condition: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"rollwise demo: timed out after {timeout:.0f}s waiting for {what}")


def rollout(client: Client) -> dict[str, Any]:
    doc: dict[str, Any] = client.call("GET", rollout_path(NAME))
    return doc


def apply(client: Client, text: str) -> None:
    client.call("POST", "/v1/apply", {"yaml": text, "file": "demo.yaml"})


def weights(doc: dict[str, Any]) -> dict[str, int]:
    return {w["revision"]: int(w["weight"]) for w in (doc.get("status") or {}).get("weights") or []}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rollwise-demo-scenario", description=__doc__)
    parser.add_argument("--dir", type=Path, help="state directory (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="leave the platform running afterwards")
    args = parser.parse_args(argv)
    console = Console()
    state_dir = args.dir or Path(tempfile.mkdtemp(prefix="rollwise-demo-"))
    rollwise = str(Path(sys.executable).parent / "rollwise")
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    log = (state_dir / "up.log").open("ab")
    started = time.monotonic()
    up = subprocess.Popen([rollwise, "up", "--foreground", "--dir", str(state_dir)], stdout=log, stderr=log)
    load: Load | None = None
    try:
        wait("the control plane", lambda: daemon_info(state_dir), 60)
        client = wait("the control plane's API", lambda: _client(state_dir), 60)
        console.print(f"[bold]Control plane up[/] in {state_dir}")

        apply(client, TEMPLATE + "---" + ROLLOUT.format(name=NAME, version="v1", error_rate=0))
        doc = wait("v1 to be healthy", lambda: _phase(client, "Healthy"), 90)
        endpoint = (doc["status"].get("endpoints") or {})["main"]
        v1_revision = doc["status"]["stableRevision"]
        address = urlsplit(endpoint)
        console.print(f"v1 is serving on {endpoint}; starting 200 requests/s of load")
        load = Load(address.hostname or "127.0.0.1", address.port or 80)
        load.run()
        wait("traffic to flow", lambda: sum(load.by_version.values()) > 100 if load else False, 30)

        apply(client, ROLLOUT.format(name=NAME, version="v2", error_rate=0))
        console.print("v2: canary 20% → 50% → 100%, analysis on the proxy's success rate")
        doc = wait("v2 to be promoted", lambda: _promoted(client, "v2", v1_revision), 120)
        v2_revision = doc["status"]["stableRevision"]
        console.print(f"v2 promoted (revision {v2_revision})")

        apply(client, ROLLOUT.format(name=NAME, version="v3", error_rate=0.3))
        console.print("v3: 30% of its answers are errors; analysis should abort it")
        doc = wait("v3 to be aborted", lambda: _phase(client, "Aborted"), 120)
        back_at = time.monotonic()
        wait("100% on v2", lambda: weights(rollout(client)) == {v2_revision: 100}, 30)
        back_at = time.monotonic()
        time.sleep(2)  # a little more load on v2 alone, so the summary shows it kept serving
        load.stop.set()

        total = sum(load.by_version.values()) + load.platform_errors
        console.print()
        console.print("[bold]Summary[/]")
        console.print(f"  requests served: {total} in {time.monotonic() - started:.0f}s")
        for version in sorted(load.by_version):
            console.print(f"  {version}: {load.by_version[version]} answers, {load.errors_by_version[version]} errors")
        console.print(f"  errors caused by the platform (connection failures, 502/503/504): {load.platform_errors}")
        first = load.first_error_at.get("v3")
        if first is not None:
            console.print(f"  time from v3's first error to 100% on v2: {back_at - first:.1f}s")
        console.print(f"  rollout message: {doc['status'].get('message')}")
        ok = load.platform_errors == 0 and load.errors_by_version.get("v2", 0) == 0 and first is not None
        return 0 if ok else 1
    except CliError as exc:
        console.print(f"rollwise demo: {exc}")
        return 1
    finally:
        if load is not None:
            load.stop.set()
        if not args.keep:
            subprocess.run([rollwise, "down", "--dir", str(state_dir)], capture_output=True, timeout=120)
            try:
                up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                up.kill()
            if args.dir is None:
                shutil.rmtree(state_dir, ignore_errors=True)
        log.close()


def _client(state_dir: Path) -> Client | None:
    try:
        client = Client(state_dir, timeout=10)
        client.call("GET", "/v1/healthz")
        return client
    except CliError:
        return None


def _phase(client: Client, phase: str) -> dict[str, Any] | None:
    doc = rollout(client)
    return doc if (doc.get("status") or {}).get("phase") == phase else None


def _promoted(client: Client, version: str, previous: str) -> dict[str, Any] | None:
    doc = rollout(client)
    status = doc.get("status") or {}
    if status.get("phase") == "Aborted":
        raise SystemExit(f"rollwise demo: {version} was aborted: {status.get('message')}")
    stable = status.get("stableRevision")
    done = status.get("phase") == "Healthy" and stable not in (None, previous)
    return doc if done and weights(doc) == {stable: 100} else None


if __name__ == "__main__":
    sys.exit(main())
