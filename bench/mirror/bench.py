"""Does mirroring to a slow shadow delay users? Primary latency through Rollwise's proxy with and
without a 100% mirror to a shadow that takes 1 s per answer, at a fixed rate, in one run.

Layout (2 cores): the proxy alone on core 0; the primary (demo app, no added latency), the shadow
(demo app, DEMO_LATENCY_MS=1000) and the load generator (hey, open loop at a fixed rate over
kept-alive connections) on core 1. The two configurations take turns (--rounds each, interleaved,
one proxy process, the route table swapped over the admin port between turns) so that other work
on a shared machine weighs on both alike. Each turn has a warm-up. Reported: hey's p50/p99/slowest
per turn, their medians per configuration, and the mirror's sent/dropped counts (the proxy keeps
at most 64 copies in flight; beyond that it drops copies rather than queue them)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from rollwise.platforms.local.proxy.client import ProxyAdmin, read_ready  # noqa: E402
from rollwise.platforms.local.proxy.routes import Mirror, RouteTable  # noqa: E402

PROXY_CORE, OTHER_CORE = "0", "1"
TOKEN = "bench-mirror-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def pinned(core: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", core, *argv] if shutil.which("taskset") else argv


def demo(port: int, version: str, latency_ms: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PORT": str(port), "DEMO_VERSION": version, "DEMO_LATENCY_MS": str(latency_ms)}
    argv = [sys.executable, "-m", "rollwise.demo.app"]
    return subprocess.Popen(pinned(OTHER_CORE, argv), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def hey(url: str, seconds: float, rate: float, connections: int) -> dict[str, float]:
    """One open-loop run: `connections` workers at rate/connections requests/s each."""
    per_worker = rate / connections
    argv = ["hey", "-z", f"{seconds:g}s", "-c", str(connections), "-q", f"{per_worker:g}", url]
    out = subprocess.run(pinned(OTHER_CORE, argv), capture_output=True, text=True, check=True).stdout
    percentiles = {int(p): float(v) for p, v in re.findall(r"^\s*(\d+)% in ([0-9.]+) secs", out, re.M)}
    slowest = float(re.search(r"Slowest:\s+([0-9.]+) secs", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    codes = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", out))
    return {
        "p50_ms": percentiles[50] * 1000,
        "p99_ms": percentiles[99] * 1000,
        "slowest_ms": slowest * 1000,
        "rps": rps,
        "non_200": sum(int(n) for c, n in codes.items() if c != "200"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="turns per configuration (default 5)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per turn (default 10)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s (default 200)")
    parser.add_argument("--connections", type=int, default=8, help="kept-alive connections (default 8)")
    parser.add_argument(
        "--mirror-max-inflight", type=int, default=64, help="the proxy's bound on mirror copies in flight (default 64)"
    )
    parser.add_argument(
        "--shadow",
        choices=("demo", "asyncio"),
        default="demo",
        help="the 1 s shadow: the demo app (a thread per connection) or slow_shadow.py (one asyncio loop)",
    )
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    if not shutil.which("hey"):
        sys.exit("bench/mirror: needs hey (apt-get install hey)")

    work = Path(tempfile.mkdtemp(prefix="rollwise-bench-mirror-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        primary_port, shadow_port, proxy_port = free_port(), free_port(), free_port()
        procs.append(demo(primary_port, "v1", 0))
        if args.shadow == "demo":
            procs.append(demo(shadow_port, "v2", 1000))
        else:
            argv = [sys.executable, str(Path(__file__).with_name("slow_shadow.py")), str(shadow_port), "1"]
            procs.append(subprocess.Popen(pinned(OTHER_CORE, argv)))
        wait_port(primary_port)
        wait_port(shadow_port)
        upstreams = {"primary": [("127.0.0.1", primary_port)], "shadow": [("127.0.0.1", shadow_port)]}
        plain = RouteTable(upstreams=upstreams, weights={"primary": 100})
        mirrored = RouteTable(
            upstreams=upstreams,
            weights={"primary": 100},
            mirror=Mirror(revision="shadow", percent=100, ignore_paths=("$.version",)),
        )
        (work / "token").write_text(TOKEN)
        (work / "routes.json").write_text(json.dumps(plain.to_dict()))
        ready_file = work / "ready.json"
        argv = [sys.executable, "-m", "rollwise.platforms.local.proxy", "--listen", f"127.0.0.1:{proxy_port}"]
        argv += ["--routes", str(work / "routes.json"), "--ready-file", str(ready_file)]
        argv += ["--admin-token-file", str(work / "token"), "--mirror-max-inflight", str(args.mirror_max_inflight)]
        procs.append(subprocess.Popen(pinned(PROXY_CORE, argv)))
        deadline = time.monotonic() + 20
        while (ready := read_ready(ready_file)) is None:
            if time.monotonic() > deadline:
                sys.exit("bench/mirror: the proxy did not start")
            time.sleep(0.05)
        admin = ProxyAdmin(ready.admin_port, token=TOKEN)
        url = f"http://127.0.0.1:{proxy_port}/"

        runs: dict[str, list[dict[str, float]]] = {"without mirror": [], "mirror to a 1 s shadow": []}
        for rnd in range(args.rounds):
            for name, table in (("without mirror", plain), ("mirror to a 1 s shadow", mirrored)):
                admin.swap(table)
                before = (admin.stats()["mirrors"].get("shadow") or {}).get("sent", 0)
                hey(url, 1.0, args.rate, args.connections)  # warm-up
                figures = hey(url, args.duration, args.rate, args.connections)
                mirror = admin.stats()["mirrors"].get("shadow") or {"sent": 0, "dropped": {}}
                figures["mirrored"] = mirror["sent"] - before
                figures["load_avg"] = os.getloadavg()[0]
                runs[name].append(figures)
                print(
                    f"round {rnd + 1} {name:>24}: p50 {figures['p50_ms']:6.2f} ms  p99 {figures['p99_ms']:6.2f} ms  "
                    f"slowest {figures['slowest_ms']:7.2f} ms  {figures['rps']:6.1f} req/s  "
                    f"non-200 {figures['non_200']:.0f}  mirrored {figures['mirrored']:.0f}  "
                    f"load {figures['load_avg']:.1f}",
                    flush=True,
                )
        summary: dict[str, Any] = {}
        for name, figs in runs.items():
            summary[name] = {k: statistics.median(f[k] for f in figs) for k in ("p50_ms", "p99_ms", "slowest_ms")}
        delta = summary["mirror to a 1 s shadow"]["p99_ms"] - summary["without mirror"]["p99_ms"]
        paired = statistics.median(
            m["p99_ms"] - w["p99_ms"]
            for w, m in zip(runs["without mirror"], runs["mirror to a 1 s shadow"], strict=True)
        )
        print()
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        print(
            f"{args.rate:g} req/s over {args.connections} connections, {args.rounds} x {args.duration:g}s each, "
            f"at most {args.mirror_max_inflight} mirror copies in flight, shadow: {args.shadow}"
        )
        for name, s in summary.items():
            medians = f"p50 {s['p50_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms, slowest {s['slowest_ms']:.2f} ms"
            print(f"{name:>24}: median {medians}")
        print(f"p99 with mirror minus without: {delta:+.2f} ms between medians, {paired:+.2f} ms median of rounds")
        if args.json:
            doc = {"runs": runs, "median": summary, "p99_delta_ms": delta, "p99_paired_delta_ms": paired}
            args.json.write_text(json.dumps(doc, indent=2))
        return 0
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
