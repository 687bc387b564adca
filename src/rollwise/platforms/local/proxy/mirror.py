"""Mirroring: a copy of a request sent to the mirror revision, fire-and-forget.

The copy is sent only once the client's request is complete (its body buffered, up to a limit),
on its own upstream connection, and nothing of the client's exchange ever waits for it: the
primary answer is written and the client's next keep-alive request served whatever the mirror
does. At most `mirror_max_inflight` copies are out at once; beyond that a copy is dropped and
counted, never queued (nginx's `mirror`, by contrast, holds the client's next request until the
mirror answers). When both answers are in, they are compared (see compare.py)."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from rollwise.platforms.local.proxy.compare import Capture, differences
from rollwise.platforms.local.proxy.upstream import Pool, UpstreamConnection

if TYPE_CHECKING:
    from rollwise.platforms.local.proxy.state import ProxyState
    from rollwise.platforms.local.proxy.table import CompiledMirror

_FRAMED = re.compile(rb"\r\n(?:content-length|transfer-encoding)[ \t]*:", re.I)


class MirrorCopy:
    """One mirrored request: collects the request body, sends the copy, captures both answers.
    It is the `Sink` of the mirror's upstream connection."""

    __slots__ = (
        "body",
        "body_size",
        "data",
        "had_body",
        "head",
        "is_head",
        "launched",
        "method",
        "mirror",
        "pool",
        "primary",
        "primary_bad",
        "primary_done",
        "released",
        "replayed",
        "sent_at",
        "shadow",
        "shadow_done",
        "state",
        "timeout",
        "too_big",
        "until_close",
        "url",
    )

    def __init__(
        self, state: ProxyState, mirror: CompiledMirror, method: bytes, url: bytes, head: bytes, had_body: bool
    ) -> None:
        limit = state.settings.mirror_max_body
        self.state = state
        self.mirror = mirror
        self.method = method
        self.url = url
        # Request line and headers, without framing or the blank line: the copy is re-framed with
        # a Content-Length since its whole body is known when it is sent.
        self.head = head
        self.had_body = had_body
        self.is_head = method == b"HEAD"
        self.timeout = state.settings.mirror_timeout
        self.body: list[bytes] = []
        self.body_size = 0
        self.too_big = False
        self.data = b""
        self.pool: Pool | None = None
        self.primary = Capture(limit)
        self.shadow = Capture(limit)
        self.primary_done = False
        self.primary_bad = False
        self.shadow_done = False
        self.launched = False
        self.released = False
        self.replayed = False
        self.until_close = False
        self.sent_at = 0.0

    # --- fed by the client's exchange ----------------------------------------------------------

    def request_body(self, data: bytes) -> None:
        if self.too_big:
            return
        self.body_size += len(data)
        if self.body_size > self.state.settings.mirror_max_body:
            self.too_big = True
            self.body = []
        else:
            self.body.append(data)

    def request_done(self) -> None:
        stats = self.mirror.stats
        if self.too_big:
            stats.drop("body_too_large")
            return
        state = self.state
        if state.mirror_inflight >= state.settings.mirror_max_inflight:
            stats.drop("inflight_limit")
            return
        state.mirror_inflight += 1
        stats.sent += 1
        self.launched = True
        self.sent_at = time.monotonic()
        body = b"".join(self.body)
        self.body = []
        framing = b"content-length: %d\r\n" % len(body) if (body or self.had_body) else b""
        self.data = self.head + framing + b"x-rollwise-mirror: 1\r\n\r\n" + body
        pool = self.mirror.backend.pick(time.monotonic())
        if pool is None:
            self._failed("no_upstream")
            return
        self.pool = pool
        conn = pool.acquire()
        if conn is None:
            pool.connect(self)
        else:
            conn.send(self, self.data)

    def primary_head(self, status: int, head: bytes) -> None:
        self.primary.head(status, head, self.mirror.compare_headers)

    def primary_body(self, data: bytes) -> None:
        self.primary.add(data)

    def primary_complete(self) -> None:
        self.primary_done = True
        self._maybe_compare()

    def primary_failed(self) -> None:
        """The primary got no whole answer (platform error, or the client left): nothing to
        compare with. Counted once the copy is settled, so every copy sent ends up counted as
        compared or as an error."""
        if self.primary_bad or self.primary_done:
            return
        self.primary_bad = True
        if self.shadow_done:
            self.mirror.stats.error("primary_failed")

    # --- Sink ----------------------------------------------------------------------------------

    def upstream_connected(self, conn: UpstreamConnection) -> None:
        conn.send(self, self.data)

    def upstream_connect_failed(self, pool: Pool, kind: str, detail: str) -> None:
        self._failed(kind)

    def upstream_head(self, status: int, head: bytes, body: bytes) -> None:
        self.shadow.head(status, head, self.mirror.compare_headers)
        if not (self.is_head or status == 204 or status == 304):
            self.until_close = _FRAMED.search(head) is None
        if body:
            self.shadow.add(body)

    def upstream_body(self, data: bytes) -> None:
        self.shadow.add(data)

    def upstream_complete(self) -> bool:
        self.shadow_done = True
        self._release()
        self.mirror.stats.answers.observe(self.shadow.status, time.monotonic() - self.sent_at)
        if self.primary_bad:
            self.mirror.stats.error("primary_failed")
        else:
            self._maybe_compare()
        return True

    def upstream_flush(self) -> None:
        pass

    def upstream_failed(self, kind: str, detail: str, replayable: bool) -> None:
        if kind == "upstream_closed" and self.until_close:
            self.upstream_complete()  # an answer framed by the end of the connection
            return
        if replayable and not self.replayed and self.pool is not None:
            self.replayed = True  # a pooled connection the mirror had closed while idle
            self.pool.connect(self)
            return
        self._failed(kind)

    def upstream_writable(self, writable: bool) -> None:
        pass  # the copy is written whole; the transport buffers it

    # --- endings -------------------------------------------------------------------------------

    def _failed(self, kind: str) -> None:
        self.mirror.stats.error(kind)
        self._release()

    def _release(self) -> None:
        if self.launched and not self.released:
            self.released = True
            self.state.mirror_inflight -= 1

    def _maybe_compare(self) -> None:
        if not (self.primary_done and self.shadow_done) or self.primary_bad:
            return
        mirror = self.mirror
        kinds = differences(self.primary, self.shadow, mirror.compare_headers, mirror.ignore)
        sample = None
        if kinds:
            sample = {
                "time": time.time(),
                "method": self.method.decode("latin-1"),
                "url": self.url.decode("latin-1"),
                "kinds": kinds,
                "primary": self.primary.describe(),
                "mirror": self.shadow.describe(),
            }
        mirror.stats.record(kinds, sample)
        # Both answers are judged; let the captured bodies go.
        self.primary = self.shadow = Capture(0)
