"""Comparing a mirrored answer with the primary's, for the shadow report.

Kinds of difference: `status`, `header:<name>` for each selected header, and `body`. Bodies that
both parse as JSON are compared as data after removing the ignore paths (so key order and
whitespace do not count); anything else is compared byte for byte."""

from __future__ import annotations

import json
from typing import Any

from rollwise.platforms.local.proxy.chunked import dechunk
from rollwise.platforms.local.proxy.jsonpath import Segment, remove_path

SAMPLE_BODY_CHARS = 512


class Capture:
    """The parts of one answer a comparison needs; the body is kept up to a limit."""

    __slots__ = ("body", "chunked", "headers", "limit", "size", "status", "truncated")

    def __init__(self, limit: int) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.size = 0
        self.limit = limit
        self.truncated = False
        self.chunked = False

    def head(self, status: int, head: bytes, names: tuple[bytes, ...]) -> None:
        """`head` as received: status line and header lines, CRLF-separated."""
        self.status = status
        for line in head.split(b"\r\n")[1:]:
            name, sep, value = line.partition(b":")
            lname = name.strip().lower()
            if lname == b"transfer-encoding":
                self.chunked = True  # the captured bytes keep their framing
            if sep and lname in names:
                key = lname.decode("latin-1")
                text = value.strip().decode("latin-1")
                self.headers[key] = self.headers[key] + ", " + text if key in self.headers else text

    def add(self, data: bytes) -> None:
        if self.truncated:
            return
        self.size += len(data)
        if self.size > self.limit:
            self.truncated = True
            self.body = []
        else:
            self.body.append(data)

    def data(self) -> bytes:
        raw = b"".join(self.body)
        return dechunk(raw) if self.chunked else raw

    def describe(self) -> dict[str, Any]:
        body = self.data().decode("utf-8", "replace")
        return {
            "status": self.status,
            "headers": dict(self.headers),
            "body": body[:SAMPLE_BODY_CHARS] + ("…" if len(body) > SAMPLE_BODY_CHARS else ""),
        }


def _normalise(raw: bytes, ignore: list[tuple[Segment, ...]]) -> Any:
    """The JSON document with ignored paths removed, or the raw bytes when it is not JSON."""
    stripped = raw.lstrip()
    if stripped[:1] not in (b"{", b"["):
        return raw
    try:
        doc = json.loads(raw)
    except ValueError:
        return raw
    for path in ignore:
        remove_path(doc, path)
    return doc


def differences(
    primary: Capture, shadow: Capture, header_names: tuple[bytes, ...], ignore: list[tuple[Segment, ...]]
) -> list[str]:
    kinds: list[str] = []
    if primary.status != shadow.status:
        kinds.append("status")
    for name in header_names:
        key = name.decode("latin-1")
        if primary.headers.get(key) != shadow.headers.get(key):
            kinds.append(f"header:{key}")
    if primary.truncated or shadow.truncated:
        if primary.size != shadow.size and not (primary.chunked or shadow.chunked):
            kinds.append("body")  # too large to compare in full, but the lengths already differ
    elif _normalise(primary.data(), ignore) != _normalise(shadow.data(), ignore):
        kinds.append("body")
    return kinds
