"""Rollwise's proxy against nginx: CPU per request and latency, in one run.

Layout (2 cores): the proxy under test alone on core 0; the upstreams (one nginx worker serving
two fixed answers, "stable" and "canary") and the load generator (wrk, one thread) on core 1.
Both proxies route 90/10 per request with a header override (X-Canary: always -> canary):
nginx with split_clients on $request_id + map, ours with weights + a header match. With --floor,
a feature-less proxy on our stack (floor.py) is measured too, to show what the stack costs.

CPU per request = (utime + stime of the proxy's processes over the measured runs) / requests
served, read from /proc/<pid>/stat. The proxies take turns: --rounds runs each, interleaved, so
that other work on a shared machine weighs on all of them alike; CPU and requests are summed
over the rounds, latencies are the median of the rounds' figures. Each run has a warm-up."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TICK = os.sysconf("SC_CLK_TCK")
PROXY_CORE, LOAD_CORE = "0", "1"


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


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


UPSTREAM_CONF = """
worker_processes 1;
pid {dir}/up.pid;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server {{ listen 127.0.0.1:{stable} backlog=4096;
           location / {{ add_header X-Upstream stable; return 200 "stable\\n"; }} }}
  server {{ listen 127.0.0.1:{canary} backlog=4096;
           location / {{ add_header X-Upstream canary; return 200 "canary\\n"; }} }}
}}
"""

PROXY_CONF = """
worker_processes 1;
pid {dir}/proxy.pid;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  upstream stable {{ server 127.0.0.1:{stable}; keepalive 512; keepalive_requests 100000000; }}
  upstream canary {{ server 127.0.0.1:{canary}; keepalive 512; keepalive_requests 100000000; }}
  split_clients "${{request_id}}" $split {{ 90% stable; * canary; }}
  map $http_x_canary $pool {{ "always" canary; default $split; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://$pool;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
  }}
}}
"""


class Proc:
    def __init__(self, name: str, argv: list[str], core: str, log: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log = log.open("wb")
        self.popen = subprocess.Popen(
            ["taskset", "-c", core, *argv], stdout=self.log, stderr=subprocess.STDOUT, env=env
        )

    def pids(self) -> list[int]:
        return [self.popen.pid, *children(self.popen.pid)]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=15)
        self.log.close()


def nginx(name: str, conf: str, workdir: Path, core: str) -> Proc:
    d = workdir / name
    d.mkdir()
    (d / "nginx.conf").write_text("daemon off;\nerror_log stderr warn;\n" + conf)
    return Proc(name, ["nginx", "-p", str(d), "-c", str(d / "nginx.conf"), "-e", "stderr"], core, d / "log")


# Browser-like request headers, none of which either proxy acts on (`--headers N` sends Host plus
# the first N-1): a proxy's cost per header shows up only when requests carry several.
BROWSER_HEADERS = [
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language: en-US,en;q=0.9",
    "Accept-Encoding: gzip, deflate, br",
    "Cookie: a=1; b=2; session=abcdef0123456789abcdef",
    "Referer: http://www.example.com/products",
    "Upgrade-Insecure-Requests: 1",
    "Sec-Fetch-Dest: document",
    "Sec-Fetch-Mode: navigate",
    "Sec-Fetch-Site: same-origin",
    "Sec-Fetch-User: ?1",
    "Cache-Control: max-age=0",
    "DNT: 1",
    "Pragma: no-cache",
]
EXTRA_HEADERS: list[str] = []


def header_args(flag: str) -> list[str]:
    return [a for h in EXTRA_HEADERS for a in (flag, h)]


def wrk(port: int, connections: int, seconds: float) -> dict[str, Any]:
    argv = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    argv += header_args("-H")
    out = subprocess.run([*argv, f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if m is None:
            raise ValueError(f"no {label}% latency in wrk output:\n{out}")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    m = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if m is None:
        raise ValueError(f"no request count in wrk output:\n{out}")
    return {
        "requests": int(m.group(1)),
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "non2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def hey(port: int, rate: int, connections: int, seconds: float) -> dict[str, Any]:
    """Open-loop load at a fixed rate: every proxy serves the same requests per second, so the
    CPU each needs per request is compared at equal work (a closed loop lets a slower proxy leave
    its peers idle, and it then also pays to wake them on every write)."""
    per_worker = max(1, rate // connections)
    argv = ["taskset", "-c", LOAD_CORE, "hey", "-z", f"{seconds:g}s", "-c", str(connections), "-q", str(per_worker)]
    argv += header_args("-H")
    out = subprocess.run([*argv, f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}% in ([\d.]+) secs", out, re.M)
        if m is None:
            raise ValueError(f"no {label}% latency in hey output:\n{out}")
        return float(m.group(1)) * 1000

    codes = {int(c): int(n) for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", out)}
    return {
        "requests": sum(codes.values()),
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "non2xx": sum(n for c, n in codes.items() if not 200 <= c < 400),
        "socket_errors": "",
    }


def split_check(port: int, n: int = 2000) -> dict[str, Any]:
    """Shares seen by one keep-alive client, and whether the header override wins."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    seen: Counter[str] = Counter()
    for _ in range(n):
        conn.request("GET", "/")
        resp = conn.getresponse()
        resp.read()
        seen[resp.getheader("X-Upstream") or "?"] += 1
    override = set()
    for _ in range(50):
        conn.request("GET", "/", headers={"X-Canary": "always"})
        resp = conn.getresponse()
        resp.read()
        override.add(resp.getheader("X-Upstream"))
    conn.close()
    return {"canary_share": round(seen["canary"] / n * 100, 1), "override_ok": override == {"canary"}}


def measure(proc: Proc, port: int, connections: int, seconds: float, warmup: float, rate: int = 0) -> dict[str, Any]:
    wrk(port, connections, warmup)
    pids = proc.pids()
    before = cpu_ticks(pids)
    result = hey(port, rate, connections, seconds) if rate else wrk(port, connections, seconds)
    result["ticks"] = cpu_ticks(pids) - before
    result["seconds"] = seconds
    return result


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    requests = sum(r["requests"] for r in runs)
    ticks = sum(r["ticks"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    return {
        "requests": requests,
        "rps": round(requests / seconds),
        "cpu_us_per_request": round(ticks / TICK * 1e6 / max(requests, 1), 2),
        "cpu_share_of_core": round(ticks / TICK / seconds, 2),
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "non2xx": sum(r["non2xx"] for r in runs),
        "rounds_cpu_us": [round(r["ticks"] / TICK * 1e6 / max(r["requests"], 1), 2) for r in runs],
    }


def machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "?")
    nginx_v = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    load = Path("/proc/loadavg").read_text().split()[:3]
    return {
        "cpu": f"{cpu} x {os.cpu_count()}",
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "nginx": nginx_v.replace("nginx version: ", ""),
        "loadavg_before": " ".join(load),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per measured run")
    ap.add_argument("--rounds", type=int, default=3, help="measured runs per proxy and connection count")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--floor", action="store_true", help="also measure the feature-less floor proxy")
    ap.add_argument(
        "--interpreted",
        action="store_true",
        help="also measure Rollwise's proxy on its interpreted build (ROLLWISE_PROXY_PURE=1)",
    )
    ap.add_argument("--rate", type=int, default=8000, help="fixed-rate phase (hey, 50 connections); 0 skips it")
    ap.add_argument("--connections", default="50,200")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument(
        "--headers",
        type=int,
        default=1,
        choices=range(1, len(BROWSER_HEADERS) + 2),
        metavar=f"1..{len(BROWSER_HEADERS) + 1}",
        help="request headers per request: Host plus browser-like ones (default 1: Host only)",
    )
    args = ap.parse_args()
    EXTRA_HEADERS[:] = BROWSER_HEADERS[: args.headers - 1]
    for tool in ("nginx", "wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"bench: {tool} is not installed (run bench/proxy/run.sh)")

    info = machine()
    info["request_headers"] = str(args.headers)
    work = Path(tempfile.mkdtemp(prefix="rollwise-bench-"))
    stable, canary, ours_port, nginx_port, floor_port, py_port = (free_port() for _ in range(6))
    routes = {
        "upstreams": {"stable": [f"127.0.0.1:{stable}"], "canary": [f"127.0.0.1:{canary}"]},
        "weights": {"stable": 90, "canary": 10},
        "routes": [{"revision": "canary", "matches": [{"headers": [{"name": "X-Canary", "exact": "always"}]}]}],
    }
    (work / "routes.json").write_text(json.dumps(routes))
    procs: list[Proc] = []
    try:
        procs.append(nginx("upstream", UPSTREAM_CONF.format(dir=work, stable=stable, canary=canary), work, LOAD_CORE))
        wait_port(stable)
        wait_port(canary)
        conf = PROXY_CONF.format(dir=work, stable=stable, canary=canary, port=nginx_port)
        ngx = nginx("nginx-proxy", conf, work, PROXY_CORE)
        procs.append(ngx)
        env_py = str(ROOT / ".venv/bin/python") if (ROOT / ".venv/bin/python").exists() else sys.executable
        ours_argv = [env_py, "-m", "rollwise.platforms.local.proxy", "--routes", str(work / "routes.json"), "--listen"]
        ours = Proc(
            "rollwise-proxy",
            [*ours_argv, f"127.0.0.1:{ours_port}"],
            PROXY_CORE,
            work / "ours.log",
        )
        procs.append(ours)
        contenders = [("rollwise", ours, ours_port), ("nginx", ngx, nginx_port)]
        if args.interpreted:
            interp = Proc(
                "rollwise-py",
                [*ours_argv, f"127.0.0.1:{py_port}"],
                PROXY_CORE,
                work / "ours-py.log",
                env={**os.environ, "ROLLWISE_PROXY_PURE": "1"},
            )
            procs.append(interp)
            contenders.append(("rollwise-py", interp, py_port))
        if args.floor:
            floor = Proc(
                "floor",
                [env_py, str(ROOT / "bench/proxy/floor.py"), str(floor_port), str(work / "routes.json")],
                PROXY_CORE,
                work / "floor.log",
            )
            procs.append(floor)
            contenders.append(("floor", floor, floor_port))
        for _, _, port in contenders:
            wait_port(port)
        # The proxy's first line says which build serves: native (compiled hot path) or python.
        info["rollwise_build"] = (work / "ours.log").read_text().splitlines()[0].removeprefix("rollwise proxy: ")

        checks = {"rollwise": split_check(ours_port), "nginx": split_check(nginx_port)}
        results: dict[str, dict[str, Any]] = {}
        for c in (int(x) for x in args.connections.split(",")):
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in contenders}
            for i in range(args.rounds):
                # Take turns, and rotate who goes first, so none always meets the same neighbours.
                turn = contenders[i % len(contenders) :] + contenders[: i % len(contenders)]
                for name, proc, port in turn:
                    runs[name].append(measure(proc, port, c, args.duration, args.warmup))
            for name, rs in runs.items():
                results[f"{name}@{c}"] = combine(rs)
        if args.rate and shutil.which("hey"):
            runs = {name: [] for name, _, _ in contenders}
            for i in range(args.rounds):
                turn = contenders[i % len(contenders) :] + contenders[: i % len(contenders)]
                for name, proc, port in turn:
                    runs[name].append(measure(proc, port, 50, args.duration, args.warmup, rate=args.rate))
            for name, rs in runs.items():
                results[f"{name}@{args.rate}/s"] = combine(rs)
    finally:
        for proc in reversed(procs):
            proc.stop()
    info["loadavg_after"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])

    lines = [
        f"machine: {info['cpu']}, Linux {info['kernel']}, Python {info['python']}, nginx {info['nginx']}",
        f"load average before/after: {info['loadavg_before']} / {info['loadavg_after']}",
        f"rollwise proxy: {info['rollwise_build']}",
        f"split check (2,000 requests, one keep-alive connection): {json.dumps(checks)}",
        "",
        f"{args.rounds} interleaved rounds of {args.duration:g} s per proxy and connection count, "
        f"{args.headers} request header(s) per request",
        "",
        "| proxy | load | req/s | CPU µs/req | per round | proxy core busy | p50 ms | p99 ms | non-2xx |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r in results.items():
        name, load = key.split("@")
        shown = (
            f"{load.removesuffix('/s')} req/s fixed (hey, 50 conns)" if load.endswith("/s") else f"{load} conns (wrk)"
        )
        per_round = " / ".join(f"{x:g}" for x in r["rounds_cpu_us"])
        lines.append(
            f"| {name} | {shown} | {r['rps']} | {r['cpu_us_per_request']} | {per_round} | "
            f"{r['cpu_share_of_core']:.0%} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['non2xx']} |"
        )
    lines.append("")
    loads = args.connections.split(",") + ([f"{args.rate}/s"] if f"nginx@{args.rate}/s" in results else [])
    for c in loads:
        ours_r, ngx_r = results[f"rollwise@{c}"], results[f"nginx@{c}"]
        ratio = ours_r["cpu_us_per_request"] / ngx_r["cpu_us_per_request"]
        verdict = "met" if ratio <= 1.2 else "NOT met"
        label = c.replace("/s", " req/s fixed") if "/s" in c else c + " connections"
        lines.append(
            f"{label}: CPU/request ours/nginx = {ratio:.2f} (goal <= 1.2: {verdict}); "
            f"p50 {ours_r['p50_ms'] / ngx_r['p50_ms']:.2f}x, p99 {ours_r['p99_ms'] / ngx_r['p99_ms']:.2f}x"
        )
        if f"rollwise-py@{c}" in results:
            py_ratio = results[f"rollwise-py@{c}"]["cpu_us_per_request"] / ngx_r["cpu_us_per_request"]
            lines.append(f"{label}: CPU/request interpreted build/nginx = {py_ratio:.2f}")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "checks": checks, "results": results}, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
