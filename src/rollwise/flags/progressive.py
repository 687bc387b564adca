"""A progressive flag rollout: the share of users on a flag's variant raised step by step, with an
analysis watching throughout; a failed verdict reverts the flag.

The steps are canary steps (`setWeight` for the percentage, `pause` for the interval), and the
percentage in force at a step is what the engine's own replay of canary steps says, so a flag
rollout and a canary read their steps the same way. Like the engine, `decide` is a pure function
of (rollout, state, now, verdict): all it needs to continue after a restart is in the state."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from rollwise.engine.steps import replay
from rollwise.spec.analysis import Verdict
from rollwise.spec.common import duration_seconds
from rollwise.spec.steps import CanaryStep, Pause

Phase = Literal["Progressing", "Paused", "Completed", "Reverted", "Aborted"]
FINAL_PHASES: frozenset[str] = frozenset({"Completed", "Reverted", "Aborted"})


class FlagRolloutError(ValueError):
    """A rollout that cannot be started as asked; the message names the option."""


@dataclass(frozen=True)
class FlagRolloutSpec:
    percent: int
    step: int | None = None  # None: straight to `percent`
    interval: str | int = "1m"
    start: int = 0  # the share of users the flag served when the rollout began

    def validate(self) -> None:
        current = self.start
        if not 1 <= self.percent <= 100:
            raise FlagRolloutError(f"--percent must be between 1 and 100 (got {self.percent})")
        if self.step is not None and not 1 <= self.step <= 100:
            raise FlagRolloutError(f"--step must be between 1 and 100 (got {self.step})")
        if self.percent <= current:
            raise FlagRolloutError(f"the flag already serves {current}% of users; --percent must be above that")
        try:
            Pause(duration=self.interval)
        except ValueError:
            raise FlagRolloutError(f"--interval must be a duration like 30s or 5m (got {self.interval!r})") from None

    def steps(self) -> list[CanaryStep]:
        """setWeight p, pause interval, ... up to `percent`, ending with a pause at `percent` so the
        analysis judges the last step too."""
        weights: list[int] = []
        if self.step is None:
            weights = [self.percent]
        else:
            w = self.start
            while w < self.percent:
                w = min(self.percent, w + self.step)
                weights.append(w)
        out: list[CanaryStep] = []
        for w in weights:
            out.append(CanaryStep.model_validate({"setWeight": w}))
            out.append(CanaryStep(pause=Pause(duration=self.interval)))
        return out


@dataclass(frozen=True)
class FlagRolloutState:
    phase: Phase
    step_index: int  # the next step to carry out
    step_started_at: datetime
    percent: int
    message: str = ""


@dataclass(frozen=True)
class Decision:
    state: FlagRolloutState
    # When to look again (None: the rollout is over, or waits for a verdict only).
    wake_at: datetime | None
    revert: bool = False


def start(now: datetime, current: int) -> FlagRolloutState:
    return FlagRolloutState("Progressing", 0, now, current, "starting")


def resume(state: FlagRolloutState, now: datetime) -> FlagRolloutState:
    """A paused rollout goes on from the step it paused at. The step's interval starts again, so a
    fresh analysis has the whole interval to judge the share in force before the next step."""
    if state.phase != "Paused":
        raise FlagRolloutError(f"only a paused rollout can be resumed (it is {state.phase})")
    return replace(state, phase="Progressing", step_started_at=now, message=f"resumed at {state.percent}%")


def promote(steps: list[CanaryStep], state: FlagRolloutState, now: datetime) -> FlagRolloutState:
    """Skip to the next step: the pause in force ends now (as `promote` does for a canary paused
    at a step). At the last pause the rollout completes at its target."""
    if state.phase in FINAL_PHASES:
        raise FlagRolloutError(f"the rollout is over ({state.phase})")
    index = state.step_index
    while index < len(steps) and steps[index].pause is None:
        index += 1  # a setWeight not carried out yet: promote to the pause after it
    return FlagRolloutState("Progressing", min(index + 1, len(steps)), now, state.percent, "promoted to the next step")


def decide(steps: list[CanaryStep], state: FlagRolloutState, now: datetime, verdict: Verdict | None) -> Decision:
    if state.phase in FINAL_PHASES:
        return Decision(state, None)
    if verdict in ("Failed", "Error"):
        why = "failed" if verdict == "Failed" else "could not measure (error)"
        return Decision(
            replace(state, phase="Reverted", message=f"the analysis {why} at {state.percent}%: flag reverted"),
            None,
            revert=True,
        )
    if state.phase == "Paused":
        return Decision(state, None)  # until resumed or promoted, whatever the clock says
    if verdict == "Inconclusive":
        return Decision(replace(state, phase="Paused", message="the analysis was inconclusive: paused"), None)
    index, started = state.step_index, state.step_started_at
    while index < len(steps):
        step = steps[index]
        if step.pause is not None and step.pause.duration is not None:
            until = started + timedelta(seconds=duration_seconds(step.pause.duration))
            if now < until:
                percent = replay(steps, index, 0).weight
                message = f"{percent}% of users; next step at {until.isoformat(timespec='seconds')}"
                return Decision(
                    FlagRolloutState("Progressing", index, started, percent, message),
                    until,
                )
        index, started = index + 1, now
    # The last pause is over: done, whether or not the analysis has a verdict yet (it stops here).
    percent = replay(steps, len(steps), 0).weight
    return Decision(FlagRolloutState("Completed", index, started, percent, f"{percent}% of users"), None)
