"""YAML parsing that remembers where every value came from, so that an error found after
validation can still point at the line and column the user wrote."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from rollwise.spec.problems import FieldPath, Problem, Severity, SpecError, format_path


class _Loader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1 timestamps: `date: 2026-01-01` stays the string the user wrote,
    as it would in a Kubernetes manifest field typed string."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

Position = tuple[int, int]


@dataclass
class Document:
    file: str
    index: int
    data: Any
    start: Position
    # Where each field's key (for mapping entries) or each item (for lists) begins, 1-based.
    positions: dict[FieldPath, Position] = field(default_factory=dict)

    def locate(self, path: FieldPath) -> Position:
        """Position of `path`, or of its nearest written ancestor (a missing field points at the
        object that should have held it)."""
        for end in range(len(path), 0, -1):
            pos = self.positions.get(tuple(path[:end]))
            if pos is not None:
                return pos
        return self.start

    def problem(self, path: FieldPath, message: str, severity: Severity = "error") -> Problem:
        line, column = self.locate(path)
        return Problem(self.file, line, column, format_path(path), message, severity)


def _pos(mark: yaml.Mark) -> Position:
    return (mark.line + 1, mark.column + 1)


def _walk(node: yaml.Node, path: FieldPath, doc: Document, problems: list[Problem], stack: set[int]) -> None:
    if id(node) in stack:  # an alias pointing at its own ancestor; the constructor reports it
        return
    stack.add(id(node))
    try:
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, Position] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    merged = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                    for m in merged:
                        _walk_merge(m, path, doc, problems, stack)
                    continue
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
                here = _pos(key_node.start_mark)
                if key in seen:
                    first = seen[key]
                    doc.positions.setdefault((*path, key), here)
                    line, col = here
                    problems.append(
                        Problem(
                            doc.file,
                            line,
                            col,
                            format_path((*path, key)),
                            f"duplicate key (first at line {first[0]}); one of the two values would be lost",
                        )
                    )
                    continue
                seen[key] = here
                doc.positions[(*path, key)] = here
                _walk(value_node, (*path, key), doc, problems, stack)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                doc.positions[(*path, i)] = _pos(item.start_mark)
                _walk(item, (*path, i), doc, problems, stack)
    finally:
        stack.discard(id(node))


def _walk_merge(node: yaml.Node, path: FieldPath, doc: Document, problems: list[Problem], stack: set[int]) -> None:
    # Merged keys take the anchor's positions unless the mapping itself set them.
    scratch = Document(doc.file, doc.index, None, doc.start)
    _walk(node, path, scratch, problems, stack)
    for key, pos in scratch.positions.items():
        doc.positions.setdefault(key, pos)


def parse(text: str, file: str) -> list[Document]:
    """Every document of a multi-document YAML text, empty ones dropped."""
    loader = _Loader(text)
    docs: list[Document] = []
    problems: list[Problem] = []
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            doc = Document(file, index, None, _pos(node.start_mark))
            _walk(node, (), doc, problems, set())
            doc.data = loader.construct_document(node)
            if doc.data is not None:
                docs.append(doc)
            index += 1
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = _pos(mark) if mark else (1, 1)
        what = exc.problem or "invalid YAML"
        if exc.context:
            what = f"{exc.context}, {what}"
        problems.append(Problem(file, line, col, "<document>", f"invalid YAML: {what}"))
    except yaml.YAMLError as exc:  # pragma: no cover - every PyYAML parse error is marked
        problems.append(Problem(file, 1, 1, "<document>", f"invalid YAML: {exc}"))
    finally:
        loader.dispose()
    if problems:
        raise SpecError(problems)
    return docs
