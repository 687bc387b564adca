"""What every connection of one proxy shares: the table in force, settings, pools and counters."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from rollwise.platforms.local.proxy.settings import ProxySettings
from rollwise.platforms.local.proxy.stats import MirrorStats, RevisionStats
from rollwise.platforms.local.proxy.table import CompiledTable
from rollwise.platforms.local.proxy.upstream import Pool

if TYPE_CHECKING:
    from rollwise.platforms.local.proxy.protocol import ClientConnection


class ProxyState:
    def __init__(self, loop: asyncio.AbstractEventLoop, settings: ProxySettings) -> None:
        self.loop = loop
        self.settings = settings
        # Replaced whole by a swap; a request reads it once, when its head is complete, so
        # in-flight requests finish on the table they started with.
        self.table: CompiledTable | None = None
        self.pools: dict[tuple[str, int], Pool] = {}
        self.revision_stats: dict[str, RevisionStats] = {}
        self.mirror_stats: dict[str, MirrorStats] = {}
        self.connections: set[ClientConnection] = set()
        self.mirror_inflight = 0
        # Answers the proxy gave without routing (bad requests, refused upgrades, no table), by status.
        self.unrouted: dict[int, int] = {}
        self.draining = False

    def pool_for(self, address: tuple[str, int]) -> Pool:
        pool = self.pools.get(address)
        if pool is None:
            pool = self.pools[address] = Pool(address, self.loop, self.settings)
        pool.retired = False
        return pool

    def stats_for(self, revision: str) -> RevisionStats:
        stats = self.revision_stats.get(revision)
        if stats is None:
            stats = self.revision_stats[revision] = RevisionStats()
        return stats

    def mirror_stats_for(self, revision: str) -> MirrorStats:
        stats = self.mirror_stats.get(revision)
        if stats is None:
            stats = self.mirror_stats[revision] = MirrorStats(self.settings.diff_sample_size)
        return stats
