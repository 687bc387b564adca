"""Problems found in a spec, each tied to file:line:column and a field path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PathPart = str | int
FieldPath = tuple[PathPart, ...]
Severity = Literal["error", "warning"]


def format_path(path: FieldPath) -> str:
    """`("spec", "steps", 2, "setWeight")` -> `spec.steps[2].setWeight`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out:
            out += f".{part}"
        else:
            out = part
    return out or "<document>"


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    column: int
    path: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        tag = "" if self.severity == "error" else "warning: "
        return f"{self.file}:{self.line}:{self.column} {self.path}: {tag}{self.message}"


class SpecError(Exception):
    """Raised when a file cannot be turned into valid resources; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
