"""Random event sequences for the property tests: a strategy's rollout is driven by arbitrary
interleavings of time passing, replicas crashing and recovering, verdicts arriving, user
commands, spec edits and scaling; the harness checks the universal invariants (and restart
safety) after every reconcile, and each test adds its strategy's own."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from hypothesis import event as note_event
from hypothesis import strategies as st

from rollwise.engine import Command, Observed, Plan
from tests.engine.harness import Platform, rollout

VERDICTS = ("Successful", "Successful", "Failed", "Inconclusive", "Error")
VERBS = ("promote", "promoteFull", "abort", "retry", "pause", "resume", "undo")

Event = tuple[Any, ...]

_ADVANCE = st.tuples(st.just("advance"), st.sampled_from((1, 2, 3, 5, 10, 30, 61, 200, 700)))
_VERDICT = st.tuples(st.just("verdict"), st.integers(0, 3), st.sampled_from(VERDICTS))
_COMMAND = st.tuples(st.just("command"), st.sampled_from(VERBS), st.one_of(st.none(), st.integers(1, 4)))

# Repeated branches are drawn more often: time, verdicts and commands are what move a rollout.
events: st.SearchStrategy[list[Event]] = st.lists(
    st.one_of(
        _ADVANCE,
        _ADVANCE,
        _ADVANCE,
        _VERDICT,
        _VERDICT,
        _COMMAND,
        _COMMAND,
        st.tuples(st.just("update"), st.integers(1, 4)),
        st.tuples(st.just("crash"), st.sampled_from(("current", "stable")), st.booleans()),
        st.tuples(st.just("scale"), st.integers(0, 6)),
    ),
    min_size=1,
    max_size=14,
)


@dataclass
class Driver:
    """Plays one sequence of events against a fresh platform and records what the property
    checks need to know about the past (verdicts and commands given per update)."""

    platform: Platform
    given: list[tuple[str, str, str]] = field(default_factory=list)  # (run name, kind, verdict)
    # (revision being rolled out, attempt, verb, index of the plan the command went into)
    commanded: list[tuple[str | None, int, str, int]] = field(default_factory=list)

    def play(self, sequence: list[Event], *, update: bool = True) -> None:
        """Deploy the first revision, then (with `update`) start rolling out a second one, then
        play the events."""
        p = self.platform
        p.reconcile()
        p.advance(2)
        p.reconcile()
        if update:
            p.update(version=2)
            p.reconcile()
        for event in sequence:
            self.step(event)

    def step(self, event: Event) -> None:
        p = self.platform
        kind = event[0]
        commands: tuple[Command, ...] = ()
        if kind == "advance":
            p.advance(event[1])
        elif kind == "update":
            p.update(version=event[1])
        elif kind == "scale":
            p.update(replicas=event[1])
        elif kind == "crash":
            rev = p.status.current_revision if event[1] == "current" else p.status.stable_revision
            if rev is not None:
                p.crash(rev, event[2])
        elif kind == "verdict":
            running = [n for n, v in p.verdicts.items() if v == "Running"]
            if running:
                name = sorted(running)[event[1] % len(running)]
                p.verdicts[name] = event[2]
                self.given.append((name, p.runs[name].request.kind, event[2]))
        elif kind == "command":
            verb, number = event[1], event[2]
            commands = (Command(verb, to_revision=number if verb == "undo" else None),)
            self.commanded.append((p.status.current_revision, p.status.attempt, verb, len(p.plans)))
        plan = p.reconcile(*commands)
        # Shown by --hypothesis-show-statistics: how far the sequences get.
        note_event(f"reached {plan.status.phase}{' (' + plan.status.stage + ')' if plan.status.stage else ''}")


def driver(
    strategy: dict[str, Any],
    *,
    replicas: int,
    checks: Sequence[Callable[[Driver, Plan, Observed], None]] = (),
    **spec: Any,
) -> Driver:
    """A driver for a fresh platform; `checks` run after every reconcile with the driver (and so
    with the history of verdicts and commands) in hand."""
    platform = Platform(rollout(strategy, replicas=replicas, **spec), ready_after=2, drain_after=1)
    d = Driver(platform)
    for check in checks:
        platform.checks.append(partial(_bound, check, d))
    return d


def _bound(check: Callable[[Driver, Plan, Observed], None], d: Driver, p: Platform, plan: Plan, o: Observed) -> None:
    check(d, plan, o)
