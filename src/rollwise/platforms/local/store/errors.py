"""What can go wrong with the state store, as errors whose message is one line a user can act on."""

from __future__ import annotations

from pathlib import Path


class StoreError(Exception):
    """Any failure of the state store the caller should show rather than trace."""


class SchemaTooNewError(StoreError):
    def __init__(self, path: Path, found: int, known: int) -> None:
        super().__init__(
            f"{path} has schema version {found}, but this rollwise only knows versions up to {known}; "
            "upgrade rollwise (a downgrade cannot read state written by a newer version)"
        )
        self.path, self.found, self.known = path, found, known


class SchemaTooOldError(StoreError):
    """Raised only by a read-only store, which must not migrate under a running daemon."""

    def __init__(self, path: Path, found: int, known: int) -> None:
        super().__init__(
            f"{path} has schema version {found}, older than this rollwise's {known}; "
            "start the control plane (rollwise up) once to migrate it"
        )
        self.path, self.found, self.known = path, found, known


class NotAStateDatabaseError(StoreError):
    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} holds tables but no rollwise schema version; it is not a rollwise state database")
        self.path = path


class StoreBusyError(StoreError):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__(f"{path} stayed locked by another process for {timeout:g}s; is a control plane stuck?")
        self.path, self.timeout = path, timeout


class RolloutNotFoundError(StoreError):
    def __init__(self, name: str) -> None:
        super().__init__(f"rollout {name!r} not found")
        self.name = name


class StaleWriteError(StoreError):
    """An optimistic-concurrency check failed: someone wrote the rollout since the caller read it."""

    def __init__(self, name: str, what: str, expected: int, found: int) -> None:
        super().__init__(
            f"rollout {name!r}: stale write, expected {what} {expected} but the stored {what} is {found}; "
            "re-read the rollout and retry"
        )
        self.name, self.what, self.expected, self.found = name, what, expected, found
