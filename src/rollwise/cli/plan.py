"""`rollwise plan -f rollout.yaml`: what rolling out this spec would do, step by step — traffic
and replicas per revision, pauses and analysis — simulated with the real engine on a platform
where every replica is ready at once, every analysis passes and a human promotes when asked."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rollwise.engine.simulate import Moment, Simulation
    from rollwise.spec.rollout import Rollout


def plan(
    file: Annotated[Path, typer.Option("--file", "-f", help="A YAML file with one or more Rollouts.")],
    first: Annotated[
        bool, typer.Option("--first", help="Plan the first deployment instead of an update of a running revision.")
    ] = False,
) -> None:
    """Print the step-by-step plan of each Rollout in FILE (weights, replicas, pauses, analysis)."""
    # Imported here, not above: every CLI verb loads this module, few of them need the engine.
    from rollwise.engine.simulate import simulate
    from rollwise.spec.loader import load_file
    from rollwise.spec.problems import SpecError
    from rollwise.spec.rollout import Rollout

    try:
        loaded, _ = load_file(file)
    except SpecError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from None
    rollouts = [item.resource for item in loaded if isinstance(item.resource, Rollout)]
    if not rollouts:
        typer.echo(f"{file}: no Rollout found", err=True)
        raise typer.Exit(1)
    for i, ro in enumerate(rollouts):
        if i:
            typer.echo("")
        typer.echo(render(simulate(ro, first=first), first=first))


def render(sim: Simulation, *, first: bool = False) -> str:
    ro = sim.rollout
    spec = ro.spec
    what = "first deployment" if first else "update"
    replicas = f"{spec.replicas} replica{'s' if spec.replicas != 1 else ''}"
    lines = [
        f"Rollout {ro.metadata.name}: {describe_strategy(ro)}, {replicas} — {what} to revision {sim.new}",
        "Simulated: every replica ready at once, every analysis passes, a human promotes when asked.",
        "",
    ]
    header = ("time", "step", "traffic", "replicas", "notes")
    rows = [header]
    previous: Moment | None = None
    for m in sim.moments:
        rows += _passed(sim, previous, m)
        rows.append(_row(m))
        previous = m
    widths = [max(len(r[c]) for r in rows) for c in range(len(header) - 1)]
    for r in rows:
        cells = [r[0].rjust(widths[0])] + [r[c].ljust(widths[c]) for c in range(1, len(widths))] + [r[-1]]
        lines.append("  ".join(cells).rstrip())
    if not sim.finished and sim.moments:
        lines.append(f"stopped: {sim.moments[-1].phase}: {sim.moments[-1].message}")
    return "\n".join(lines)


def describe_strategy(ro: Rollout) -> str:
    st = ro.spec.strategy
    routing = None
    for candidate in (st.canary, st.shadow, st.ab_test):
        if candidate is not None and candidate.traffic_routing is not None:
            routing = candidate.traffic_routing.router
    name = st.name
    if st.canary is not None and st.canary.dynamic is not None and not st.canary.steps:
        name = "canary (dynamic weighting)"
    return f"{name} via the {routing} router" if routing else name


def _passed(sim: Simulation, previous: Moment | None, m: Moment) -> list[tuple[str, str, str, str, str]]:
    """Steps the engine went through within one reconcile: they take effect together with the
    step shown after them, so they get a line but no state of their own."""
    from rollwise.engine.simulate import steps_at
    from rollwise.engine.steps import describe

    steps = steps_at(sim.rollout, m.stage)
    if not steps or m.index is None:
        return []
    start = 0
    if previous is not None and previous.stage == m.stage and previous.index is not None:
        start = previous.index + 1
    return [
        (_clock(m.at), f"{j + 1}/{len(steps)} {describe(steps[j])}", "", "", "passed at once")
        for j in range(start, min(m.index, len(steps)))
    ]


def _row(m: Moment) -> tuple[str, str, str, str, str]:
    notes = list(m.routes)
    notes += [f"analysis {a} (assumed to pass)" for a in m.analysis]
    if m.waits == "human":
        notes.append("waits for `rollwise promote`")
    elif m.waits:
        notes.append(f"waits {m.waits}")
    traffic = ", ".join(f"{r} {w}%" for r, w in m.weights) or "none (downtime)"
    replicas = ", ".join(f"{r} {c}" for r, c in m.replicas) or "none"
    return (_clock(m.at), m.step, traffic, replicas, "; ".join(notes))


def _clock(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
