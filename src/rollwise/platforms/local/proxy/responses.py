"""Bytes the proxy writes itself: status lines and its own plain-text answers."""

from __future__ import annotations

from http import HTTPStatus

STATUS_LINES: dict[int, bytes] = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}

# Headers that describe one hop, not the message (RFC 9110 7.6.1): never forwarded as received.
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def status_line(status: int) -> bytes:
    line = STATUS_LINES.get(status)
    return line if line is not None else f"HTTP/1.1 {status} Unknown\r\n".encode()


def plain(status: int, message: str, *, close: bool, extra: bytes = b"") -> bytes:
    """A complete answer with a one-line plain body; `extra` holds already-formatted header lines."""
    body = (message + "\n").encode()
    head = (
        status_line(status)
        + b"content-type: text/plain; charset=utf-8\r\n"
        + b"content-length: "
        + str(len(body)).encode()
        + b"\r\n"
        + extra
        + (b"connection: close\r\n" if close else b"")
        + b"\r\n"
    )
    return head + body
