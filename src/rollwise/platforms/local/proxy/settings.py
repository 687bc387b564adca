"""Limits and timeouts of the proxy, fixed at start."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProxySettings:
    connect_timeout: float = 3.0
    # Longest wait for the next bytes of an upstream's answer (not for the whole answer, so a slow
    # stream that keeps moving is not cut).
    read_timeout: float = 60.0
    # Idle keep-alive connections kept per upstream replica, and how long one may sit unused.
    max_idle_per_upstream: int = 256
    upstream_idle_timeout: float = 30.0
    # A client connection with no request in flight is closed after this long.
    client_idle_timeout: float = 75.0
    # A replica that refused a connection is skipped for this long (if its revision has others).
    eject_seconds: float = 1.0
    # Mirror copies in flight at once; beyond it copies are dropped and counted, never queued,
    # so a slow shadow cannot hold memory or delay anyone.
    mirror_max_inflight: int = 64
    mirror_timeout: float = 10.0
    # Bodies above this are not copied to the mirror (dropped, counted) nor compared.
    mirror_max_body: int = 1 << 20
    diff_sample_size: int = 50
    # Largest request head the proxy accepts (httptools itself has no limit).
    max_head_bytes: int = 64 * 1024
