"""A real Prometheus (Debian's package) on a free port of 127.0.0.1 scraping the given targets every
second, optionally behind basic auth (`--web.config.file`)."""

from __future__ import annotations

import base64
import subprocess
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.analysis.servers import require_prometheus
from tests.procs import free_port, wait_for


def bcrypt_hash(password: str) -> str:
    import bcrypt  # the dev extra has it; Prometheus keeps basic-auth passwords only as bcrypt hashes

    # Cost 4 is the least bcrypt allows: Prometheus checks the hash on every request.
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@contextmanager
def run_prometheus(
    tmp: Path,
    targets: Sequence[str],
    *,
    metrics_path: str = "/metrics",
    users: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """Yields Prometheus' address once it is ready. `users` (name -> password) turns on basic auth
    for every endpoint of Prometheus' own web server."""
    binary = require_prometheus()
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = tmp / "prometheus.yml"
    quoted = ", ".join(f"'{t}'" for t in targets)
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: rollwise\n"
        f"    metrics_path: {metrics_path}\n"
        f"    static_configs:\n      - targets: [{quoted}]\n"
    )
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    ready_headers: dict[str, str] = {}
    if users:
        web = tmp / "web.yml"
        web.write_text(
            "basic_auth_users:\n" + "".join(f"  {name}: '{bcrypt_hash(pw)}'\n" for name, pw in users.items())
        )
        argv.append(f"--web.config.file={web}")
        name, password = next(iter(users.items()))
        ready_headers["Authorization"] = basic_header(name, password)
    log_path = tmp / "prometheus.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    address = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"prometheus exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            request = urllib.request.Request(f"{address}/-/ready", headers=ready_headers)
            with urllib.request.urlopen(request, timeout=2) as reply:
                return bool(reply.status == 200)

        wait_for(ready, timeout=60, what="prometheus to be ready")
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
