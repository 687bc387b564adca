"""The local platform's state: SQLite (WAL) in `<state dir>/state.db`, plus the state directory and
the API token. `Store` is the entry point; `migrations` holds the schema."""

from rollwise.platforms.local.store.errors import (
    NotAStateDatabaseError,
    RolloutNotFoundError,
    SchemaTooNewError,
    SchemaTooOldError,
    StaleWriteError,
    StoreBusyError,
    StoreError,
)
from rollwise.platforms.local.store.records import (
    AnalysisRunRecord,
    ApplyResult,
    EventRecord,
    EventType,
    FlagChange,
    MeasurementRecord,
    ReplicaRecord,
    ResourceRecord,
    Retention,
    RevisionRecord,
    RolloutRecord,
)
from rollwise.platforms.local.store.state_dir import (
    StateDirError,
    TokenPermissionError,
    db_path,
    ensure_state_dir,
    ensure_token,
    read_token,
    token_path,
)
from rollwise.platforms.local.store.store import ReplicaTable, Store

__all__ = [
    "AnalysisRunRecord",
    "ApplyResult",
    "EventRecord",
    "EventType",
    "FlagChange",
    "MeasurementRecord",
    "NotAStateDatabaseError",
    "ReplicaRecord",
    "ReplicaTable",
    "ResourceRecord",
    "Retention",
    "RevisionRecord",
    "RolloutNotFoundError",
    "RolloutRecord",
    "SchemaTooNewError",
    "SchemaTooOldError",
    "StaleWriteError",
    "StateDirError",
    "Store",
    "StoreBusyError",
    "StoreError",
    "TokenPermissionError",
    "db_path",
    "ensure_state_dir",
    "ensure_token",
    "read_token",
    "token_path",
]
