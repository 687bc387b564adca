"""Compare the decision policies over many seeds and print a Markdown table.

    .venv/bin/python -m bench.decision.run --seeds 1000

Blast radius: requests served by a bad version until traffic is back on stable. A bad version
that is promoted (or still running at the horizon) keeps serving until the horizon, and all of
those count. Time to promote: seconds until a good version takes 100% (a good version still
running at the horizon counts the horizon). False aborts: good versions rolled back.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from bench.decision.simulate import POLICIES, ROLLWISE, VERSIONS, Outcome, Scenario, Stream, Version, rollwise


@dataclass(frozen=True)
class Row:
    policy: str
    version: str
    outcomes: tuple[Outcome, ...]


def _one_seed(job: tuple[int, Scenario, int]) -> list[tuple[str, str, Outcome]]:
    seed, scenario, interval = job
    stream = Stream(seed, scenario)
    policies = dict(POLICIES)
    config = ROLLWISE.model_copy(update={"interval": f"{interval}s"})
    policies["rollwise"] = lambda s, v: rollwise(s, v, config)
    out = []
    for version in VERSIONS:
        for name, policy in policies.items():
            outcome = policy(stream, version)
            if version.bad and outcome.action != "abort":
                outcome = _until_horizon(stream, version, outcome)
            out.append((name, version.name, outcome))
    return out


def _until_horizon(stream: Stream, version: Version, o: Outcome) -> Outcome:
    """A bad version that was promoted serves every request from then to the horizon."""
    if o.action != "promote":
        return o
    s = stream.scenario
    a, b = int(stream.starts[int(o.seconds)]), int(stream.starts[s.horizon])
    failed = int(np.count_nonzero(stream.error[a:b] < s.base_errors + version.extra_errors))
    return Outcome(o.action, o.seconds, o.exposed + (b - a), o.failed + failed)


def run(seeds: int, scenario: Scenario, processes: int, interval: int) -> dict[tuple[str, str], list[Outcome]]:
    results: dict[tuple[str, str], list[Outcome]] = defaultdict(list)
    jobs = [(seed, scenario, interval) for seed in range(seeds)]
    with multiprocessing.Pool(processes) as pool:
        for rows in pool.imap(_one_seed, jobs, chunksize=20):
            for policy, version, outcome in rows:
                results[(policy, version)].append(outcome)
    return results


def table(results: dict[tuple[str, str], list[Outcome]], scenario: Scenario) -> str:
    lines = [
        "| policy | good: promoted | good: time to promote, mean / p50 / p90 s | good: false aborts "
        "| bad version | bad: aborted | blast radius, mean requests (p90) | failed requests from it, mean |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for policy in POLICIES:
        good = results[(policy, "good")]
        promoted = [o for o in good if o.action == "promote"]
        times = np.array([o.seconds if o.action == "promote" else scenario.horizon for o in good], dtype=float)
        aborts = sum(o.action == "abort" for o in good)
        first = True
        for version in VERSIONS[1:]:
            bad = results[(policy, version.name)]
            exposed = np.array([o.exposed for o in bad], dtype=float)
            failed = np.array([o.failed for o in bad], dtype=float)
            aborted = sum(o.action == "abort" for o in bad)
            head = (
                f"| {policy} | {100 * len(promoted) / len(good):.1f}% | "
                f"{times.mean():.0f} / {np.median(times):.0f} / {np.percentile(times, 90):.0f} | "
                f"{100 * aborts / len(good):.2f}% "
                if first
                else "| | | | "
            )
            lines.append(
                f"{head}| {version.name} | {100 * aborted / len(bad):.1f}% | "
                f"{exposed.mean():,.0f} ({np.percentile(exposed, 90):,.0f}) | {failed.mean():,.0f} |"
            )
            first = False
    return "\n".join(lines)


def goals(results: dict[tuple[str, str], list[Outcome]], scenario: Scenario, against: str) -> str:
    def mean_exposed(policy: str, version: str) -> float:
        return float(np.mean([o.exposed for o in results[(policy, version)]]))

    def mean_time(policy: str) -> float:
        return float(
            np.mean([o.seconds if o.action == "promote" else scenario.horizon for o in results[(policy, "good")]])
        )

    lines = [f"Rollwise against {against}:", ""]
    for version in VERSIONS[1:]:
        ratio = mean_exposed("rollwise", version.name) / mean_exposed(against, version.name)
        verdict = "met" if ratio <= 0.25 else "NOT met"
        lines.append(f"- blast radius, {version.name}: {100 * ratio:.1f}% of {against}'s (goal <= 25%: {verdict})")
    t_ratio = mean_time("rollwise") / mean_time(against)
    verdict = "met" if t_ratio <= 0.5 else "NOT met"
    lines.append(f"- time to promote: {100 * t_ratio:.1f}% of {against}'s (goal <= 50%: {verdict})")
    false_aborts = sum(o.action == "abort" for o in results[("rollwise", "good")]) / len(results[("rollwise", "good")])
    lines.append(
        f"- false aborts: {100 * false_aborts:.2f}% (goal <= 1%: {'met' if false_aborts <= 0.01 else 'NOT met'})"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--rps", type=float, default=100.0)
    parser.add_argument("--base-errors", type=float, default=0.005)
    parser.add_argument("--interval", type=int, default=5, help="Rollwise's evaluation interval, seconds")
    parser.add_argument("--processes", type=int, default=multiprocessing.cpu_count())
    a = parser.parse_args()
    scenario = Scenario(rps=a.rps, base_errors=a.base_errors)
    started = time.perf_counter()
    results = run(a.seeds, scenario, a.processes, a.interval)
    elapsed = time.perf_counter() - started
    print(
        f"{a.seeds} seeds, {scenario.rps:g} requests/s, stable errors {100 * scenario.base_errors:g}%, "
        f"latency lognormal(median {scenario.median_ms:g} ms, sigma {scenario.sigma:g}), horizon {scenario.horizon} s, "
        f"Rollwise interval {a.interval} s; "
        f"{elapsed:.0f} s on {a.processes} processes, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}"
    )
    print()
    print(table(results, scenario))
    print()
    print(goals(results, scenario, "flagger"))
    print()
    print(goals(results, scenario, "argo"))


if __name__ == "__main__":
    main()
