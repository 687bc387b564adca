"""The engine: a pure, deterministic reconciler for every strategy.

`reconcile(rollout, observed, now, verdicts, commands) -> Plan`. No I/O, no clock, no randomness;
all memory lives in the status it returns. See docs/engine.md."""

from rollwise.engine.dynamic import Decision, PolicyState, VelocityPolicy, WeightPolicy
from rollwise.engine.plan import (
    AnalysisRunRequest,
    Command,
    MatchRoute,
    MirrorRoute,
    Observed,
    Plan,
    RevisionObserved,
    RouteTable,
    Verdict,
)
from rollwise.engine.reconcile import reconcile
from rollwise.engine.revision import referenced_config, revision_name

__all__ = [
    "AnalysisRunRequest",
    "Command",
    "Decision",
    "MatchRoute",
    "MirrorRoute",
    "Observed",
    "Plan",
    "PolicyState",
    "RevisionObserved",
    "RouteTable",
    "VelocityPolicy",
    "Verdict",
    "WeightPolicy",
    "reconcile",
    "referenced_config",
    "revision_name",
]
