"""Cookie conditions as a regular expression on the Cookie header (Istio and Gateway API match
headers, not cookies), and back again when an object is read.

The pattern is RE2-compatible (no look-arounds) and anchored at both ends, so it means the same
under full-match (Envoy) and search semantics:
    ^(?:.*;\\s*)?NAME=VALUE(?:;.*)?$
where VALUE is the escaped exact value, the escaped prefix followed by [^;]*, or (?:REGEX) with the
user's own ^ and $ anchors removed (the cookie value is what they anchor)."""

from __future__ import annotations

import re

from rollwise.spec.match import StringMatch

_HEAD = r"^(?:.*;\s*)?"
_TAIL = r"(?:;.*)?$"
_ANY_VALUE = "[^;]*"


def cookie_regex(cond: StringMatch) -> str:
    name = re.escape(cond.name)
    if cond.kind == "exact":
        body = re.escape(cond.value)
    elif cond.kind == "prefix":
        body = re.escape(cond.value) + _ANY_VALUE
    else:
        body = f"(?:{strip_anchors(cond.value)})"
    return f"{_HEAD}{name}={body}{_TAIL}"


def parse_cookie_regex(pattern: str) -> StringMatch | None:
    """The condition `cookie_regex` made this pattern from; None for any other pattern."""
    if not (pattern.startswith(_HEAD) and pattern.endswith(_TAIL)):
        return None
    inner = pattern[len(_HEAD) : -len(_TAIL)]
    m = re.match(r"((?:\\.|[^=\\])+)=(.*)\Z", inner, re.S)
    if m is None:
        return None
    name, body = _unescape(m.group(1)), m.group(2)
    if name is None:
        return None
    if body.startswith("(?:") and body.endswith(")"):
        return StringMatch(name=name, regex=body[3:-1])
    if body.endswith(_ANY_VALUE):
        prefix = _unescape(body[: -len(_ANY_VALUE)])
        return None if prefix is None else StringMatch(name=name, prefix=prefix)
    exact = _unescape(body)
    return None if exact is None else StringMatch(name=name, exact=exact)


def strip_anchors(regex: str) -> str:
    """A cookie regex without its outer ^ and $: the value is matched whole either way."""
    if regex.startswith("^"):
        regex = regex[1:]
    if regex.endswith("$") and not regex.endswith("\\$"):
        regex = regex[:-1]
    return regex


def _unescape(escaped: str) -> str | None:
    """Undo re.escape; None when the text is not a plain escaped literal."""
    out, i = [], 0
    while i < len(escaped):
        ch = escaped[i]
        if ch == "\\":
            if i + 1 >= len(escaped):
                return None
            out.append(escaped[i + 1])
            i += 2
            continue
        if ch in ".^$*+?{}[]|()":
            return None
        out.append(ch)
        i += 1
    return "".join(out)
