"""Decoding chunked transfer coding, for the few places that need a body without its framing:
an HTTP/1.0 client behind a chunked answer, and comparing mirrored bodies. The hot path passes
chunked answers through as received."""

from __future__ import annotations


class Dechunker:
    """Incremental decoder; `feed` returns the body bytes the input completes. Chunk extensions
    and trailers are dropped."""

    __slots__ = ("buf", "done", "remaining", "state")

    def __init__(self) -> None:
        self.buf = b""
        self.remaining = 0
        self.state = "size"  # size -> data -> crlf -> size ... -> trailers
        self.done = False

    def feed(self, data: bytes) -> bytes:
        buf = self.buf + data
        out: list[bytes] = []
        pos = 0
        while not self.done:
            if self.state == "data":
                take = min(self.remaining, len(buf) - pos)
                out.append(buf[pos : pos + take])
                pos += take
                self.remaining -= take
                if self.remaining:
                    break
                self.state = "crlf"
                continue
            end = buf.find(b"\r\n", pos)
            if end < 0:
                break
            line = buf[pos:end]
            pos = end + 2
            if self.state == "crlf":
                self.state = "size"
            elif self.state == "size":
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size:
                    self.remaining = size
                    self.state = "data"
                else:
                    self.state = "trailers"
            elif not line:  # the blank line after trailers ends the body
                self.done = True
        self.buf = buf[pos:]
        return b"".join(out)


def dechunk(data: bytes) -> bytes:
    return Dechunker().feed(data)


class ChunkedEnd:
    """Finds where a chunked body ends in the raw byte stream, across reads, without decoding it.

    The client side hands httptools whole reads and takes request heads from the raw bytes, so
    after a chunked request it must know where the next request starts; httptools reports the
    body's pieces but not where in the read the message ended. llhttp (strict) has checked the
    framing before this runs, so only valid framing is seen here: size lines (hex, optional
    `;extensions`), data and its CRLF, the last chunk, trailer lines and the blank line."""

    __slots__ = ("line", "remaining", "trailers")

    def __init__(self) -> None:
        self.line = b""  # a size or trailer line cut by the end of a read
        self.remaining = 0  # chunk data bytes (and their CRLF) still to skip
        self.trailers = False  # past the last chunk

    def skip(self, buf: bytes, pos: int) -> int:
        """Consume `buf[pos:]`: the index just past the body's end, or -1 if it goes on."""
        n = len(buf)
        while True:
            remaining = self.remaining
            if remaining:
                take = min(remaining, n - pos)
                pos += take
                self.remaining = remaining - take
                if self.remaining:
                    return -1
            if self.line:
                joined = self.line + buf[pos:]
                end = joined.find(b"\r\n")
                if end < 0:
                    self.line = joined
                    return -1
                line = joined[:end]
                pos += end + 2 - len(self.line)
                self.line = b""
            else:
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    self.line = buf[pos:]
                    return -1
                line = buf[pos:end]
                pos = end + 2
            if self.trailers:
                if not line:
                    return pos  # the blank line after the trailers (or after the last chunk)
            else:
                size = int(line.split(b";", 1)[0], 16)
                if size:
                    self.remaining = size + 2
                else:
                    self.trailers = True
