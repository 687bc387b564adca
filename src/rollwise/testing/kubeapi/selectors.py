"""Label and field selectors with the API server's syntax and meaning.

Label selectors (``labels.Parse`` in apimachinery): comma-separated requirements, each one of
``key``, ``!key``, ``key=v``, ``key==v``, ``key!=v``, ``key in (a,b)``, ``key notin (a,b)``,
``key>N``, ``key<N``. ``!=`` and ``notin`` also match objects that lack the key.

Field selectors: comma-separated ``path=v``, ``path==v`` or ``path!=v`` (``\\``, ``,`` and ``=``
escaped with a backslash). The server supports only some fields per resource; see
`FieldSelector.parse`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rollwise.testing.kubeapi.errors import ApiError, bad_request

_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def label_key_problem(key: str) -> str | None:
    """Why `key` is not a valid qualified name (a label key), or None."""
    prefix, _, name = key.rpartition("/")
    if "/" in prefix:
        return f"a qualified name must have at most one '/': {key!r}"
    if prefix and (len(prefix) > 253 or not _SUBDOMAIN.match(prefix)):
        return f"prefix part must be a lowercase RFC 1123 subdomain: {key!r}"
    if not name or len(name) > 63 or not _NAME.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
            f"with an alphanumeric character (at most 63 characters): {key!r}"
        )
    return None


def label_value_problem(value: str) -> str | None:
    if value == "":
        return None
    if len(value) > 63 or not _NAME.match(value):
        return (
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
            f"and must start and end with an alphanumeric character (at most 63 characters): {value!r}"
        )
    return None


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if not present or value is None:
            return False
        try:
            number = int(value)
        except ValueError:
            return False
        bound = int(self.values[0])
        return number > bound if self.op == "gt" else number < bound


_TOKEN = re.compile(r"\s*(==|!=|=|!|\(|\)|,|>|<|[^\s=!(),<>]+)")


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:  # pragma: no cover - the pattern matches any non-space character
            raise bad_request(f"unable to parse requirement: {text!r}")
        out.append(m.group(1))
        pos = m.end()
    return out


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        """Parse a selector string; a malformed one is a 400 BadRequest, as from the server."""
        if not text or not text.strip():
            return cls()
        toks = _tokens(text)
        reqs: list[Requirement] = []
        i = 0

        def fail(why: str) -> ApiError:
            return bad_request(f"unable to parse requirement: {why} in label selector {text!r}")

        def take() -> str:
            nonlocal i
            if i >= len(toks):
                raise fail("unexpected end")
            i += 1
            return toks[i - 1]

        def check_key(key: str) -> None:
            if key in ("(", ")", ",", "=", "==", "!=", "!", ">", "<"):
                raise fail(f"expected a key, found {key!r}")
            problem = label_key_problem(key)
            if problem:
                raise fail(problem)

        def check_value(value: str) -> None:
            problem = label_value_problem(value)
            if problem:
                raise fail(problem)

        while i < len(toks):
            tok = take()
            if tok == "!":
                key = take()
                check_key(key)
                reqs.append(Requirement(key, "!"))
            else:
                key = tok
                check_key(key)
                nxt = toks[i] if i < len(toks) else ","
                if nxt == ",":
                    reqs.append(Requirement(key, "exists"))
                elif nxt in ("=", "==", "!="):
                    i += 1
                    value = toks[i] if i < len(toks) and toks[i] != "," else ""
                    if value:
                        i += 1
                    check_value(value)
                    reqs.append(Requirement(key, "!=" if nxt == "!=" else "=", (value,)))
                elif nxt in ("in", "notin"):
                    i += 1
                    if take() != "(":
                        raise fail(f"expected '(' after {nxt!r}")
                    values: list[str] = []
                    while True:
                        tok = take()
                        if tok == ")":
                            break
                        if tok == ",":
                            continue
                        check_value(tok)
                        values.append(tok)
                    if not values:
                        raise fail(f"for {nxt!r}, the set of values must not be empty")
                    reqs.append(Requirement(key, nxt, tuple(values)))
                elif nxt in (">", "<"):
                    i += 1
                    value = take()
                    if not re.fullmatch(r"-?\d+", value):
                        raise fail(f"for {nxt!r}, the value must be an integer: {value!r}")
                    reqs.append(Requirement(key, "gt" if nxt == ">" else "lt", (value,)))
                else:
                    raise fail(f"found {nxt!r}, expected one of '=', '!=', 'in', 'notin', '>', '<' or ','")
            if i < len(toks):
                if toks[i] != ",":
                    raise fail(f"found {toks[i]!r}, expected ','")
                i += 1
                if i >= len(toks):
                    raise fail("trailing ','")
        return cls(tuple(reqs))


def selector_to_string(selector: Mapping[str, Any] | None) -> str:
    """A `metav1.LabelSelector` object (matchLabels, matchExpressions) as a selector string."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], sorted(expr.get("values") or [])
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


# --- field selectors -----------------------------------------------------------------------------

FieldGetter = Callable[[Mapping[str, Any]], str]


def _path_getter(path: str) -> FieldGetter:
    keys = path.split(".")

    def get(obj: Mapping[str, Any]) -> str:
        node: Any = obj
        for key in keys:
            if not isinstance(node, Mapping):
                return ""
            node = node.get(key)
        if node is None:
            return ""
        if isinstance(node, bool):
            return "true" if node else "false"
        return str(node)

    return get


# Fields every resource supports, and the extra ones the server supports for some built-in kinds.
COMMON_FIELDS = ("metadata.name", "metadata.namespace")
EXTRA_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "pods"): (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    ("", "events"): (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    ("", "secrets"): ("type",),
    ("", "namespaces"): ("status.phase",),
    ("", "nodes"): ("spec.unschedulable",),
    ("apps", "replicasets"): ("status.replicas",),
    ("batch", "jobs"): ("status.successful",),
}


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    cur = ""
    escaped = False
    for ch in text:
        if escaped:
            cur += "\\" + ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if escaped:
        cur += "\\"
    parts.append(cur)
    return parts


def _unescape(text: str) -> str:
    out = ""
    it = iter(text)
    for ch in it:
        if ch == "\\":
            nxt = next(it, "")
            if nxt not in ("\\", ",", "="):
                raise bad_request(f"invalid field selector: invalid escape sequence {ch + nxt!r}")
            out += nxt
        else:
            out += ch
    return out


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    op: str  # "=" or "!="
    value: str
    get: FieldGetter

    def matches(self, obj: Mapping[str, Any]) -> bool:
        actual = self.get(obj)
        return actual == self.value if self.op == "=" else actual != self.value


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(r.matches(obj) for r in self.requirements)

    def value_of(self, field: str) -> str | None:
        """The value an equality requirement pins `field` to, if any (e.g. metadata.name)."""
        for r in self.requirements:
            if r.field == field and r.op == "=":
                return r.value
        return None

    @classmethod
    def parse(cls, text: str | None, group: str = "", plural: str = "") -> FieldSelector:
        if not text or not text.strip():
            return cls()
        allowed = COMMON_FIELDS + EXTRA_FIELDS.get((group, plural), ())
        reqs: list[FieldRequirement] = []
        for part in _split_unescaped(text, ","):
            part = part.strip()
            if not part:
                raise bad_request(f"invalid field selector: empty requirement in {text!r}")
            m = re.match(r"^([^=!]+?)\s*(==|!=|=)\s*(.*)$", part)
            if m is None:
                raise bad_request(f"invalid field selector: {part!r}: expected field=value or field!=value")
            field, op, value = m.group(1).strip(), m.group(2), m.group(3)
            if field not in allowed:
                raise bad_request(f'field label not supported: "{field}"')
            reqs.append(FieldRequirement(field, "!=" if op == "!=" else "=", _unescape(value), _path_getter(field)))
        return cls(tuple(reqs))
