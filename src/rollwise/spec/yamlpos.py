"""YAML parsing that remembers where every value came from, so that an error found after
validation can still point at the line and column the user wrote."""

from __future__ import annotations

import math
import re
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


def key_text(key: Any) -> str:
    """A mapping key as a path part: strings as written, other scalars as YAML spells them, so that
    a flag named `1:` shows as `spec.flags.1` (not a list index) and matches the validator's paths."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, float) and not math.isfinite(key):
        return ".nan" if math.isnan(key) else (".inf" if key > 0 else "-.inf")
    return str(key)


class _Unreadable(Exception):
    """A scalar that its explicit tag does not fit (`!!int abc`); already reported as a problem."""


def _scalar(
    loader: yaml.SafeLoader, node: yaml.ScalarNode, path: FieldPath, doc: Document, problems: list[Problem]
) -> Any:
    """The scalar as the document will hold it (constructed once; the loader reuses it). PyYAML's
    constructors raise plain ValueError or KeyError for `!!int abc` or `!!bool maybe`: report it
    at the scalar instead of letting it escape."""
    try:
        return loader.construct_object(node)
    except yaml.YAMLError:
        raise
    except Exception:
        # A mapping value is located at its key, like every other problem; a key or item at itself.
        line, col = doc.positions.get(path, _pos(node.start_mark))
        tag = node.tag.rsplit(":", 1)[-1]
        message = f"invalid YAML: {node.value!r} is not a valid {tag} (as its tag !!{tag} requires)"
        problems.append(Problem(doc.file, line, col, format_path(path), message))
        raise _Unreadable from None


def _key_of(loader: yaml.SafeLoader, node: yaml.Node, path: FieldPath, doc: Document, problems: list[Problem]) -> str:
    if isinstance(node, yaml.ScalarNode):
        # Construct the key as the document will (`1` is an int, `"1"` a string), then spell it.
        return key_text(_scalar(loader, node, (*path, str(node.value)), doc, problems))
    return str(node.value)


def _walk(
    loader: yaml.SafeLoader, node: yaml.Node, path: FieldPath, doc: Document, problems: list[Problem], stack: set[int]
) -> None:
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
                        _walk_merge(loader, m, path, doc, problems, stack)
                    continue
                key = _key_of(loader, key_node, path, doc, problems)
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
                _walk(loader, value_node, (*path, key), doc, problems, stack)
        elif isinstance(node, yaml.ScalarNode):
            _scalar(loader, node, path, doc, problems)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                doc.positions[(*path, i)] = _pos(item.start_mark)
                _walk(loader, item, (*path, i), doc, problems, stack)
    finally:
        stack.discard(id(node))


def _walk_merge(
    loader: yaml.SafeLoader, node: yaml.Node, path: FieldPath, doc: Document, problems: list[Problem], stack: set[int]
) -> None:
    # Merged keys take the anchor's positions unless the mapping itself set them.
    scratch = Document(doc.file, doc.index, None, doc.start)
    _walk(loader, node, path, scratch, problems, stack)
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
            try:
                _walk(loader, node, (), doc, problems, set())
            except _Unreadable:
                break  # the loader is mid-document; what follows cannot be trusted
            doc.data = loader.construct_document(node)
            if doc.data is not None:
                docs.append(doc)
            index += 1
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = _pos(mark) if mark else (1, 1)
        problems.append(Problem(file, line, col, "<document>", f"invalid YAML: {_syntax_message(exc)}"))
    except yaml.YAMLError as exc:  # pragma: no cover - every PyYAML parse error is marked
        problems.append(Problem(file, 1, 1, "<document>", f"invalid YAML: {exc}"))
    finally:
        loader.dispose()
    if problems:
        raise SpecError(problems)
    return docs


# PyYAML names tokens after its grammar; say what the user sees instead.
_TOKENS = {
    "'<stream end>'": "the end of the file",
    "'<document start>'": "'---'",
    "'<document end>'": "'...'",
    "'<block mapping start>'": "a mapping entry",
    "'<block sequence start>'": "a list item",
    "'<block end>'": "the end of the block",
    "<block end>": "the end of the block",
    "'<scalar>'": "a value",
    "'-'": "a list item",
    "expected the node content": "expected a value",
    "unexpected end of stream": "the end of the file",
    "found unhashable key": "found a key that is a list or a mapping; a key must be a plain value",
    "could not determine a constructor for the tag": "unsupported tag",
    "quoted scalar": "quoted string",
    "plain scalar": "plain value",
    "block scalar": "block of text",
    "block mapping": "mapping",
    "block sequence": "list",
    "flow mapping": "mapping in braces",
    "flow sequence": "list in brackets",
}
# Contexts that add nothing to the problem they precede.
_BARE_CONTEXTS = ("while parsing a flow node", "while parsing a block node", "while scanning for the next token")
_BLOCK_END = re.compile(r"^expected <block end>, but found (.+)$")
_BAD_START = re.compile(r"^found character '(.+)' that cannot start any token$")


def _syntax_message(exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's complaint, with where the unfinished construct began and without grammar jargon."""
    problem = exc.problem or "unreadable"
    context = "" if exc.context in _BARE_CONTEXTS else (exc.context or "")
    cm, pm = exc.context_mark, exc.problem_mark
    if context and cm is not None and (pm is None or (cm.line, cm.column) != (pm.line, pm.column)):
        context += f" that starts at line {cm.line + 1}, column {cm.column + 1}"
    block_end = _BLOCK_END.match(problem)
    bad_start = _BAD_START.match(problem)
    if block_end:
        found = _TOKENS.get(block_end.group(1), block_end.group(1))
        where = _plain(context.removeprefix("while parsing ").removeprefix("a ")) if context else "block"
        return f"found {found} where the {where} should have ended; check the indentation"
    if bad_start and bad_start.group(1) == "\\t":
        return "found a tab character; YAML indentation must use spaces"
    if bad_start and bad_start.group(1) in ("@", "`", "%"):
        problem += f"; a value starting with {bad_start.group(1)!r} must be in quotes"
    problem, context = _plain(problem), _plain(context)
    return f"{context}: {problem}" if context else problem


def _plain(text: str) -> str:
    for token, words in _TOKENS.items():
        text = text.replace(token, words)
    return text
