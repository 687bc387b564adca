"""A failure the CLI reports as one line on stderr with exit status 1 (never a traceback)."""

from __future__ import annotations


class CliError(Exception):
    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        # Lines printed before the message (e.g. every problem of a refused apply).
        self.details = details or []
