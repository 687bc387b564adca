"""`GET /metrics`: the control plane's own gauges (phase, weights, replicas per rollout) and the
proxies' counters and histograms, each proxy's series labelled with its rollout and listener.

The proxies' texts are merged family by family: the exposition format wants each family's HELP
and TYPE once, with all its samples after them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from rollwise.spec.status import RolloutStatus

PHASES = ("Progressing", "Paused", "Healthy", "Degraded", "Aborted")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def rollout_metrics(statuses: Mapping[str, RolloutStatus | None]) -> list[str]:
    lines = [
        "# HELP rollwise_rollout_phase 1 for the phase each rollout is in.",
        "# TYPE rollwise_rollout_phase gauge",
    ]
    for name, status in sorted(statuses.items()):
        for phase in PHASES:
            value = 1 if status is not None and status.phase == phase else 0
            lines.append(f'rollwise_rollout_phase{{rollout="{_label(name)}",phase="{phase}"}} {value}')
    lines += [
        "# HELP rollwise_rollout_weight Percent of traffic routed to a revision.",
        "# TYPE rollwise_rollout_weight gauge",
    ]
    for name, status in sorted(statuses.items()):
        for w in (status.weights if status else None) or []:
            lines.append(
                f'rollwise_rollout_weight{{rollout="{_label(name)}",revision="{_label(w.revision)}"}} {w.weight}'
            )
    lines += [
        "# HELP rollwise_rollout_replicas Replicas of a revision, asked for (desired) and ready.",
        "# TYPE rollwise_rollout_replicas gauge",
    ]
    for name, status in sorted(statuses.items()):
        for r in (status.revisions if status else None) or []:
            for state, value in (("desired", r.replicas), ("ready", r.ready), ("available", r.available)):
                lines.append(
                    f'rollwise_rollout_replicas{{rollout="{_label(name)}",revision="{_label(r.revision)}",'
                    f'state="{state}"}} {value}'
                )
    return lines


def merge_proxy_metrics(texts: Iterable[tuple[str, str, str]]) -> list[str]:
    """(rollout, listener, exposition text) of each proxy, merged into one exposition."""
    families: dict[str, list[str]] = {}
    heads: dict[str, list[str]] = {}
    for rollout, listener, text in texts:
        current = ""
        extra = f'rollout="{_label(rollout)}",listener="{_label(listener)}"'
        for line in text.splitlines():
            if line.startswith("# HELP ") or line.startswith("# TYPE "):
                current = line.split()[2]
                heads.setdefault(current, [])
                if line not in heads[current]:
                    heads[current].append(line)
                families.setdefault(current, [])
            elif line and not line.startswith("#"):
                families.setdefault(current, []).append(_with_labels(line, extra))
    out: list[str] = []
    for family, samples in families.items():
        out += heads.get(family, [])
        out += samples
    return out


def _with_labels(sample: str, extra: str) -> str:
    name, brace, rest = sample.partition("{")
    if brace:
        return f"{name}{{{extra},{rest}"
    metric, _, value = sample.partition(" ")
    return f"{metric}{{{extra}}} {value}"


def render(lines: Sequence[str]) -> str:
    return "\n".join(lines) + "\n"
