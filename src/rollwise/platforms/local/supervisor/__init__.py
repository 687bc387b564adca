"""The local platform's supervisor: each revision's replicas as processes that outlive the control
plane, with readiness probes, restarts with backoff, drained stops and per-process logs."""

from rollwise.platforms.local.supervisor.backoff import BackoffPolicy
from rollwise.platforms.local.supervisor.records import JsonFileRecords, MemoryRecords, ReplicaRecord, ReplicaRecords
from rollwise.platforms.local.supervisor.supervisor import Supervisor, Tuning
from rollwise.platforms.local.supervisor.view import ChangeHook, DrainHook, Phase, ReplicaView

__all__ = [
    "BackoffPolicy",
    "ChangeHook",
    "DrainHook",
    "JsonFileRecords",
    "MemoryRecords",
    "Phase",
    "ReplicaRecord",
    "ReplicaRecords",
    "ReplicaView",
    "Supervisor",
    "Tuning",
]
