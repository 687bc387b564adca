"""Dynamic weighting: the canary's weight schedule comes from a policy fed by analysis verdicts,
one decision per interval. The engine owns the timing and the replicas; a policy only decides."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, Protocol

from rollwise.engine.plan import Verdict
from rollwise.spec.strategies.canary import DynamicWeighting

Action = Literal["raise", "hold", "abort", "promote"]


@dataclass(frozen=True)
class PolicyState:
    weight: int
    step_weight: int
    raises: int = 0


@dataclass(frozen=True)
class Decision:
    action: Action
    state: PolicyState
    reason: str


class WeightPolicy(Protocol):
    """Chooses the canary's next weight from the verdict of the interval that just ended. `verdict`
    is None when no analysis is configured (time alone decides). Must be pure."""

    def start(self) -> PolicyState: ...

    def decide(self, state: PolicyState, verdict: Verdict | None) -> Decision: ...


@dataclass(frozen=True)
class VelocityPolicy:
    """Raise the weight while verdicts are good, by steps that grow linearly (min, 2·min, 3·min…)
    or exponentially (min, 2·min, 4·min…) up to maxStepWeight; an inconclusive verdict holds the
    weight and drops the speed back to minStepWeight (so does an error: no evidence, no exposure); a
    failure aborts. Reaching maxWeight promotes."""

    min_step: int
    max_step: int
    start_weight: int
    max_weight: int
    velocity: Literal["linear", "exponential"]

    @classmethod
    def from_spec(cls, d: DynamicWeighting) -> VelocityPolicy:
        low = max(1, d.min_step_weight)
        return cls(
            min_step=low,
            max_step=max(low, d.max_step_weight),
            start_weight=min(d.start_weight, d.max_weight),
            max_weight=max(1, d.max_weight),
            velocity=d.velocity,
        )

    def step_after(self, raises: int) -> int:
        grow = raises + 1 if self.velocity == "linear" else 2 ** min(raises, 16)
        return min(self.max_step, self.min_step * grow)

    def start(self) -> PolicyState:
        return PolicyState(weight=self.start_weight, step_weight=self.step_after(0))

    def decide(self, state: PolicyState, verdict: Verdict | None) -> Decision:
        if verdict == "Failed":
            return Decision("abort", state, f"evidence of harm at weight {state.weight}")
        if verdict in ("Inconclusive", "Error", "Pending", "Running"):
            held = replace(state, raises=0, step_weight=self.step_after(0))
            return Decision("hold", held, f"evidence unsure at weight {state.weight}: holding")
        weight = min(self.max_weight, state.weight + state.step_weight)
        raised = PolicyState(weight=weight, step_weight=self.step_after(state.raises + 1), raises=state.raises + 1)
        if weight >= self.max_weight:
            return Decision("promote", raised, f"reached weight {weight}: promoting")
        return Decision("raise", raised, f"healthy at weight {state.weight}: raising to {weight}")
