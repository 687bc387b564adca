"""Leader election with a coordination.k8s.io/v1 Lease, so that two controller replicas never act
at once. Only the holder runs the operator; the others wait.

As in client-go, expiry is judged by the candidate's own clock: a lease whose content has not
changed for `leaseDurationSeconds` since this process last saw it change is expired, whatever the
holder's clock wrote into `renewTime` (clocks of two machines need not agree). Every write carries
the resourceVersion that was read, so two candidates racing for an expired lease cannot both win
(the loser gets 409 Conflict)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease

from rollwise.platforms.kubernetes.names import FIELD_MANAGER

log = logging.getLogger("rollwise.kubernetes.lease")


def _now() -> datetime:
    return datetime.now(UTC)


class LeaderElector:
    def __init__(
        self,
        client: AsyncClient,
        namespace: str,
        name: str,
        identity: str,
        *,
        lease_seconds: int = 15,
        renew_seconds: float = 5.0,
        retry_seconds: float = 2.0,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self.retry_seconds = retry_seconds
        self.leading = asyncio.Event()
        self.lost = asyncio.Event()
        self._seen: tuple[str | None, float] | None = None  # (resourceVersion, monotonic when seen)
        self._renewer: asyncio.Task[None] | None = None

    async def acquire(self) -> None:
        """Return once this process holds the lease; then keep renewing it in the background.
        `lost` is set if a renewal fails for longer than the lease lasts."""
        while not await self._try_acquire():
            await asyncio.sleep(self.retry_seconds)
        log.info("leading as %s (lease %s/%s)", self.identity, self.namespace, self.name)
        self.leading.set()
        self._renewer = asyncio.create_task(self._renew_loop(), name="rollwise-lease-renew")

    async def release(self) -> None:
        """Give the lease up at once (a clean stop), so that a standby takes over without waiting
        for it to expire."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        if not self.leading.is_set():
            return
        self.leading.clear()
        try:
            lease = await self.client.get(Lease, self.name, namespace=self.namespace)
            if lease.spec is not None and lease.spec.holderIdentity == self.identity:
                lease.spec.holderIdentity = None
                lease.spec.leaseDurationSeconds = 1
                await self.client.replace(lease, field_manager=FIELD_MANAGER)
        except ApiError as exc:
            log.warning("could not release the lease: %s", exc)

    async def _try_acquire(self) -> bool:
        try:
            lease = await self.client.get(Lease, self.name, namespace=self.namespace)
        except ApiError as exc:
            if exc.status.code != 404:
                log.warning("reading the lease: %s", exc)
                return False
            return await self._create()
        spec = lease.spec or LeaseSpec()
        version = lease.metadata.resourceVersion if lease.metadata else None
        mono = time.monotonic()
        if self._seen is None or self._seen[0] != version:
            self._seen = (version, mono)
        holder = spec.holderIdentity
        duration = spec.leaseDurationSeconds or self.lease_seconds
        expired = mono - self._seen[1] >= duration
        if holder and holder != self.identity and not expired:
            return False
        now = _now()
        taking_over = holder != self.identity
        lease.spec = LeaseSpec(
            holderIdentity=self.identity,
            leaseDurationSeconds=self.lease_seconds,
            acquireTime=now if taking_over else spec.acquireTime or now,
            renewTime=now,
            leaseTransitions=(spec.leaseTransitions or 0) + (1 if taking_over else 0),
        )
        try:
            await self.client.replace(lease, field_manager=FIELD_MANAGER)
        except ApiError as exc:
            if exc.status.code != 409:
                log.warning("taking the lease: %s", exc)
            return False
        return True

    async def _create(self) -> bool:
        now = _now()
        lease = Lease(
            metadata=ObjectMeta(name=self.name, namespace=self.namespace),
            spec=LeaseSpec(
                holderIdentity=self.identity,
                leaseDurationSeconds=self.lease_seconds,
                acquireTime=now,
                renewTime=now,
                leaseTransitions=0,
            ),
        )
        try:
            await self.client.create(lease, field_manager=FIELD_MANAGER)
        except ApiError as exc:
            if exc.status.code != 409:
                log.warning("creating the lease: %s", exc)
            return False
        return True

    async def _renew_loop(self) -> None:
        last_ok = time.monotonic()
        while True:
            await asyncio.sleep(self.renew_seconds)
            try:
                renewed = await self._renew()
            except (ApiError, OSError) as exc:  # the API server unreachable: keep trying until expiry
                log.warning("renewing the lease: %s", exc)
                renewed = False
            if renewed:
                last_ok = time.monotonic()
                continue
            if time.monotonic() - last_ok >= self.lease_seconds or await self._taken():
                log.error("lost the lease %s/%s", self.namespace, self.name)
                self.leading.clear()
                self.lost.set()
                return

    async def _renew(self) -> bool:
        lease = await self.client.get(Lease, self.name, namespace=self.namespace)
        if lease.spec is None or lease.spec.holderIdentity != self.identity:
            return False
        lease.spec.renewTime = _now()
        try:
            await self.client.replace(lease, field_manager=FIELD_MANAGER)
        except ApiError as exc:
            if exc.status.code == 409:
                return False
            raise
        return True

    async def _taken(self) -> bool:
        try:
            lease = await self.client.get(Lease, self.name, namespace=self.namespace)
        except (ApiError, OSError):
            return False
        return lease.spec is not None and lease.spec.holderIdentity not in (None, self.identity)
