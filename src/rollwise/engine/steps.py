"""Replaying canary steps: the traffic shape in force at a step is what every setWeight,
setCanaryScale, setHeaderRoute and setMirrorRoute up to and including it made it, so the engine
never needs to remember routes — only the step index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rollwise.spec.analysis_ref import BackgroundAnalysis
from rollwise.spec.match import RouteMatch
from rollwise.spec.steps import CanaryStep
from rollwise.spec.strategies.canary import AbortPolicy, CanaryStrategy
from rollwise.spec.traffic import Capability, TrafficRouting


@dataclass(frozen=True)
class Track:
    """What the step machine needs: the steps and how traffic and replicas are moved (a canary's,
    or shadow's promotion steps)."""

    steps: Sequence[CanaryStep]
    routing: TrafficRouting | None
    background: BackgroundAnalysis | None
    abort: AbortPolicy
    max_surge: int | str
    max_unavailable: int | str
    # How long the former stable stays up after promotion; routed tracks only (without a router
    # the old revision has already shrunk as the canary grew).
    scale_down_delay: float

    @classmethod
    def of(cls, ca: CanaryStrategy) -> Track:
        delay = float(ca.scale_down_delay_seconds) if ca.traffic_routing is not None else 0.0
        return cls(ca.steps or [], ca.traffic_routing, ca.analysis, ca.abort, ca.max_surge, ca.max_unavailable, delay)


def sized(n: int, weight: int) -> int:
    """Replicas for a share of traffic: ceil(n · weight / 100)."""
    return (n * weight + 99) // 100


@dataclass
class Shape:
    weight: int = 0
    replicas: int = 0
    headers: dict[str, tuple[RouteMatch, ...]] = field(default_factory=dict)
    mirrors: dict[str, tuple[int, tuple[RouteMatch, ...]]] = field(default_factory=dict)


def replay(steps: Sequence[CanaryStep], upto: int, n: int) -> Shape:
    """The traffic shape after steps[:upto], and the canary replicas it needs: sized to its
    traffic unless setCanaryScale says otherwise."""
    shape = Shape()
    scale: int | None = None
    for step in steps[:upto]:
        if step.set_weight is not None:
            shape.weight = step.set_weight
        elif step.set_canary_scale is not None:
            sc = step.set_canary_scale
            if sc.replicas is not None:
                scale = sc.replicas
            elif sc.weight is not None:
                scale = sized(n, sc.weight)
            else:
                scale = None
        elif step.set_header_route is not None:
            hr = step.set_header_route
            if hr.match:
                shape.headers[hr.name] = tuple(hr.match)
            else:
                shape.headers.pop(hr.name, None)
        elif step.set_mirror_route is not None:
            mr = step.set_mirror_route
            if mr.percent is not None:
                shape.mirrors[mr.name] = (mr.percent, tuple(mr.match or ()))
            else:
                shape.mirrors.pop(mr.name, None)
    if scale is not None:
        shape.replicas = scale
    else:
        # Mirrored and matched requests are traffic too: a mirror of p% needs the replicas of a
        # weight of p, a header route at least one replica (its share is unknown).
        mirrored = max((p for p, _ in shape.mirrors.values()), default=0)
        floor = 1 if shape.headers and n > 0 else 0
        shape.replicas = max(sized(n, shape.weight), sized(n, mirrored), floor)
    return shape


def describe(step: CanaryStep) -> str:
    if step.set_weight is not None:
        return f"setWeight {step.set_weight}"
    if step.pause is not None:
        return "pause" + (f" {step.pause.duration}" if step.pause.duration is not None else " (until promoted)")
    if step.analysis is not None:
        return "analysis " + ", ".join(t.template_name for t in step.analysis.templates)
    if step.set_canary_scale is not None:
        sc = step.set_canary_scale
        if sc.replicas is not None:
            return f"setCanaryScale replicas={sc.replicas}"
        if sc.weight is not None:
            return f"setCanaryScale weight={sc.weight}"
        return "setCanaryScale matchTrafficWeight"
    if step.set_header_route is not None:
        verb = "set" if step.set_header_route.match else "remove"
        return f"setHeaderRoute {step.set_header_route.name} ({verb})"
    assert step.set_mirror_route is not None
    mr = step.set_mirror_route
    return f"setMirrorRoute {mr.name} " + (f"{mr.percent}%" if mr.percent is not None else "(remove)")


def unsupported(step: CanaryStep, routing: TrafficRouting | None) -> str | None:
    """Why the router cannot carry out `step`, or None. Never a silent no-op."""
    if step.set_header_route is None and step.set_mirror_route is None:
        return None
    if routing is None:
        return f"{describe(step)} needs trafficRouting"
    if step.set_mirror_route is not None:
        if step.set_mirror_route.percent is not None and not routing.can("mirror"):
            return f"the {routing.router} router cannot mirror traffic"
        matches = step.set_mirror_route.match
    else:
        assert step.set_header_route is not None
        matches = step.set_header_route.match
    for match in matches or []:
        for kind, cond in match.conditions():
            capability: Capability = f"{kind}{cond.kind.capitalize()}"  # type: ignore[assignment]
            if not routing.can(capability):
                return f"the {routing.router} router cannot match a {kind} by {cond.kind}"
    return None
