"""Rollwise's Kubernetes controller with N Rollouts in one process: peak memory, reconcile
latency, and the time from a spec change to the routing object updated.

Three processes: the emulated API server with the readiness driver (cluster.py), the controller
exactly as deployed (`python -m rollwise.cli controller run` with a kubeconfig pointing at the
emulator, watching every namespace, default resync), and this script, which only starts them,
reads /proc and scrapes the controller's /metrics.

Phases:
1. cold start: the N Rollouts (with their Services and VirtualServices) exist before the
   controller starts, as after a controller restart; it takes the Lease, lists and watches, and
   carries every Rollout to Healthy (one ReplicaSet each, Services selecting it, the VirtualService
   written and read back);
2. spec changes: --changes Rollouts spread over the set get a new image, one every
   --change-interval seconds; for each, the seconds from the write's commit to the commit of the
   VirtualService write that gives the new canary its first step's weight (10).
   With --settle, between the two: wait until the controller is idle (all Healthy is not idle:
   at 10,000 thousands of event reconciles queued by the start-up are still waiting), so the
   changes measure the steady state rather than the tail of a restart.

Figures: the controller's peak RSS (VmHWM of its process), RSS at the end, CPU seconds, reconcile
duration quantiles from its own histogram (rollwise_controller_reconcile_duration_seconds; linear
interpolation inside a bucket, as Prometheus' histogram_quantile), overall and for phase 2 alone,
and spec-to-route quantiles (exact, measured in the emulator)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
TICK = os.sysconf("SC_CLK_TCK")
METRIC = "rollwise_controller_reconcile_duration_seconds"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        return str(r.read().decode())


def histogram(text: str) -> list[tuple[float, int]]:
    """[(upper bound, cumulative count)] of the reconcile duration histogram."""
    out = []
    for line in text.splitlines():
        if line.startswith(METRIC + "_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            out.append((float("inf") if bound == "+Inf" else float(bound), int(line.rsplit(" ", 1)[1])))
    return out


def gauge(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


def quantile(buckets: list[tuple[float, int]], q: float) -> float | None:
    """histogram_quantile: the bucket holding the q-th observation, linear inside it."""
    total = buckets[-1][1] if buckets else 0
    if total == 0:
        return None
    rank = q * total
    lower, below = 0.0, 0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower  # beyond the last finite bound: report that bound
            return lower + (bound - lower) * (rank - below) / max(count - below, 1)
        lower, below = bound, count
    return lower


def minus(a: list[tuple[float, int]], b: list[tuple[float, int]]) -> list[tuple[float, int]]:
    return [(bound, ca - cb) for (bound, ca), (_, cb) in zip(a, b, strict=True)]


def summary(buckets: list[tuple[float, int]]) -> dict[str, Any]:
    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 1)

    return {
        "count": buckets[-1][1] if buckets else 0,
        "p50_ms": ms(quantile(buckets, 0.5)),
        "p90_ms": ms(quantile(buckets, 0.9)),
        "p99_ms": ms(quantile(buckets, 0.99)),
        "buckets": {("+Inf" if b == float("inf") else f"{b:g}"): c for b, c in buckets},
    }


class Sampler(threading.Thread):
    """RSS of the controller every 0.5 s (VmHWM is the peak anyway; the series shows the shape)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.series: list[tuple[float, int]] = []
        self.stop = threading.Event()
        self.t0 = time.monotonic()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            try:
                self.series.append((time.monotonic() - self.t0, proc_status(self.pid)["VmRSS"]))
            except (FileNotFoundError, KeyError, ProcessLookupError):
                return


def settle(port: int, quiet: float, cap: float) -> dict[str, Any]:
    """Poll /metrics until no reconcile has started for `quiet` seconds (or `cap` passes). A
    resync's reconcile does not count as busy: with resyncs due, an idle controller still runs
    them, a few a second at 10,000 Rollouts, and they go on for as long as it runs."""

    def counters() -> tuple[float, float]:
        text = scrape(port)
        background = sum(
            gauge(text, f'rollwise_controller_reconcile_causes_total{{cause="{c}"}}') for c in ("resync", "timed")
        )
        return gauge(text, "rollwise_controller_reconciles_total"), background

    began = time.monotonic()
    first = last = counters()
    quiet_since = began
    while (now := time.monotonic()) - quiet_since < quiet:
        if now - began > cap:
            result = "cap"
            break
        time.sleep(0.5)
        current = counters()
        if current[0] - last[0] > current[1] - last[1]:
            quiet_since = time.monotonic()
        last = current
    else:
        result = "idle"
    return {
        "result": result,
        "seconds": round(time.monotonic() - began, 1),
        "quiet_s": quiet,
        "cap_s": cap,
        "reconciles": last[0] - first[0],
        "resync_or_timed": last[1] - first[1],
    }


def read_event(stream: IO[str], name: str) -> dict[str, Any]:
    while True:
        line = stream.readline()
        if not line:
            raise SystemExit(f"bench: the cluster process ended before '{name}'")
        doc: dict[str, Any] = json.loads(line)
        if doc.get("event") == name:
            return doc


def machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "?")
    return {
        "cpu": f"{cpu} x {os.cpu_count()}",
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "loadavg_before": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "commit": subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
    }


def find_crds() -> Path:
    for path in (Path(os.environ.get("ROLLWISE_SHARED_CRDS", "/nonexistent")), ROOT.parent / "shared" / "crds"):
        if (path / "networking.istio.io_virtualservices.yaml").is_file():
            return path
    raise SystemExit("bench: no Istio CRDs (set ROLLWISE_SHARED_CRDS to the folder with them)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rollouts", type=int, default=10_000)
    ap.add_argument("--namespaces", type=int, default=10, help="Rollouts spread over this many namespaces")
    ap.add_argument("--changes", type=int, default=200, help="spec changes measured after all are Healthy")
    ap.add_argument("--change-interval", type=float, default=0.1, help="seconds between two spec changes")
    ap.add_argument("--healthy-timeout", type=float, default=3000, help="give up waiting for Healthy after")
    ap.add_argument(
        "--settle",
        action="store_true",
        help="after all are Healthy, wait until the controller is idle before the changes",
    )
    ap.add_argument("--settle-quiet", type=float, default=5, help="idle: no reconcile started for this long")
    ap.add_argument("--settle-cap", type=float, default=600, help="start the changes anyway after this long")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--controller-log", type=Path, help="the controller's log (default: a temporary file)")
    ap.add_argument(
        "--profile", type=Path, help="run both processes under cProfile, writing DIR/{cluster,controller}.prof"
    )
    args = ap.parse_args()

    info = machine()
    work = Path(tempfile.mkdtemp(prefix="rollwise-bench-controller-"))
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "POD_NAME", "POD_NAMESPACE")}
    env["NO_PROXY"] = "*"

    def profiled(name: str) -> list[str]:
        if args.profile is None:
            return [sys.executable]
        args.profile.mkdir(parents=True, exist_ok=True)
        return [sys.executable, "-m", "cProfile", "-o", str(args.profile / f"{name}.prof")]

    cluster = subprocess.Popen(
        [
            *profiled("cluster"),
            str(ROOT / "bench" / "controller" / "cluster.py"),
            "--rollouts",
            str(args.rollouts),
            "--namespaces",
            str(args.namespaces),
            "--changes",
            str(args.changes),
            "--change-interval",
            str(args.change_interval),
            "--healthy-timeout",
            str(args.healthy_timeout),
            "--crds",
            str(find_crds()),
            *(["--wait-go"] if args.settle else []),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert cluster.stdin is not None and cluster.stdout is not None
    controller: subprocess.Popen[bytes] | None = None
    try:
        serving = read_event(cluster.stdout, "serving")
        kubeconfig = work / "kubeconfig"
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: bench\n"
            f"clusters:\n- name: bench\n  cluster:\n    server: {serving['url']}\n"
            "users:\n- name: bench\n  user: {}\n"
            "contexts:\n- name: bench\n  context:\n    cluster: bench\n    user: bench\n    namespace: default\n"
        )
        metrics_port = free_port()
        log_path = args.controller_log or work / "controller.log"
        command = [
            *profiled("controller"),
            "-m",
            "rollwise.cli",
            "controller",
            "run",
            "--kubeconfig",
            str(kubeconfig),
            "--identity",
            "bench",
            "--health-port",
            "0",
            "--metrics-port",
            str(metrics_port),
            "--log-level",
            "warning",
        ]
        with log_path.open("wb") as log:
            controller = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        cluster.stdin.write("started\n")
        cluster.stdin.flush()
        started = time.monotonic()
        sampler = Sampler(controller.pid)
        sampler.start()

        healthy = read_event(cluster.stdout, "healthy")
        healthy_s = time.monotonic() - started
        at_healthy = scrape(metrics_port)
        hwm_healthy = proc_status(controller.pid)["VmHWM"]
        cpu_healthy = cpu_seconds(controller.pid)
        emulator_cpu_healthy = cpu_seconds(cluster.pid)
        # The change phase's figures count from here (after settling, when asked to).
        at_changes, cpu_changes, emulator_cpu_changes = at_healthy, cpu_healthy, emulator_cpu_healthy
        settled: dict[str, Any] | None = None
        if args.settle and healthy["result"] == "ok":
            settled = settle(metrics_port, args.settle_quiet, args.settle_cap)
            at_changes = scrape(metrics_port)
            cpu_changes, emulator_cpu_changes = cpu_seconds(controller.pid), cpu_seconds(cluster.pid)
            settled["controller_cpu_s"] = round(cpu_changes - cpu_healthy, 1)
        if args.settle:
            cluster.stdin.write("go\n")
            cluster.stdin.flush()
        done = read_event(cluster.stdout, "done")
        at_end = scrape(metrics_port)
        mem = proc_status(controller.pid)
        cpu_end = cpu_seconds(controller.pid)
        emulator_cpu_end = cpu_seconds(cluster.pid)
        sampler.stop.set()
        results = {
            "machine": info,
            "command": " ".join(["bench/controller/bench.py", *sys.argv[1:]]),
            "controller_command": "python -m rollwise.cli controller run --kubeconfig K --identity bench "
            "--health-port 0 --metrics-port P --log-level warning",
            "rollouts": args.rollouts,
            "namespaces": args.namespaces,
            "populate_s": serving["populate_s"],
            "cold_start": {
                "result": healthy["result"],
                "healthy": healthy["healthy"],
                "seconds_to_all_healthy": round(healthy_s, 1),
                "api_requests": healthy["requests"],
                "controller_cpu_s": round(cpu_healthy, 1),
                "emulator_cpu_s": round(emulator_cpu_healthy, 1),
                "controller_peak_rss_mib": round(hwm_healthy / 1024, 1),
                "reconcile": summary(histogram(at_healthy)),
            },
            "settle": settled,
            "changes": {
                "result": done["result"],
                "changes": done["changes"],
                "routed": done["routed"],
                "interval_s": args.change_interval,
                "spec_to_route_s": done["spec_to_route_s"],
                "phase_s": done["change_phase_s"],
                "api_requests": done["change_phase_requests"],
                "controller_cpu_s": round(cpu_end - cpu_changes, 1),
                "emulator_cpu_s": round(emulator_cpu_end - emulator_cpu_changes, 1),
                "reconcile": summary(minus(histogram(at_end), histogram(at_changes))),
            },
            "controller": {
                "peak_rss_mib": round(mem["VmHWM"] / 1024, 1),
                "rss_at_end_mib": round(mem["VmRSS"] / 1024, 1),
                "cpu_s": round(cpu_end, 1),
                "reconciles": gauge(at_end, "rollwise_controller_reconciles_total"),
                "reconcile_causes": {
                    when: {
                        cause: gauge(text, f'rollwise_controller_reconcile_causes_total{{cause="{cause}"}}')
                        for cause in ("event", "resync", "timed")
                    }
                    for when, text in (("at_healthy", at_healthy), ("at_changes", at_changes), ("at_end", at_end))
                },
                "own_write_events": gauge(at_end, "rollwise_controller_own_write_events_total"),
                "reconcile_failures": gauge(at_end, "rollwise_controller_reconcile_failures_total"),
                "workers": gauge(at_end, "rollwise_controller_rollouts"),
                "reconcile_all": summary(histogram(at_end)),
                "rss_series_mib": [
                    (round(t), round(kib / 1024)) for t, kib in sampler.series[:: max(1, len(sampler.series) // 40)]
                ],
            },
            "emulator": {
                "peak_rss_mib": done["emulator_peak_rss_mib"],
                "objects": done["objects"],
                "requests_total": done["requests_total"],
                "readiness_writes": done["readiness_writes"],
            },
            "loadavg_after": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
            "wall_s": round(time.monotonic() - started, 1),
        }
        # A clean stop (SIGTERM: workers finish the reconcile in progress, the Lease is given up).
        controller.send_signal(signal.SIGTERM)
        stop_began = time.monotonic()
        try:
            controller.wait(timeout=120)
            results["controller"]["stop_s"] = round(time.monotonic() - stop_began, 1)
            results["controller"]["exit_code"] = controller.returncode
        except subprocess.TimeoutExpired:
            results["controller"]["stop_s"] = "did not stop within 120 s of SIGTERM"
    finally:
        if controller is not None and controller.poll() is None:
            controller.kill()
            controller.wait()
        cluster.stdin.close()
        try:
            cluster.wait(timeout=60)
        except subprocess.TimeoutExpired:
            cluster.kill()
            cluster.wait()
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
