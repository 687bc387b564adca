"""What every check receives: the document (for positions) and a place to put problems."""

from __future__ import annotations

from dataclasses import dataclass, field

from rollwise.spec.problems import FieldPath, Problem
from rollwise.spec.yamlpos import Document


@dataclass
class Checker:
    doc: Document
    problems: list[Problem] = field(default_factory=list)

    def error(self, path: FieldPath, message: str) -> None:
        self.problems.append(self.doc.problem(path, message))

    def warn(self, path: FieldPath, message: str) -> None:
        self.problems.append(self.doc.problem(path, message, "warning"))
