"""Kubernetes Events (core v1) about a Rollout: its transitions and the errors the controller met,
so that `kubectl describe rollout` and `kubectl get events` tell the story."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Literal

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.models.core_v1 import EventSource, ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Event

from rollwise.platforms.kubernetes.names import API_VERSION, COMPONENT

log = logging.getLogger("rollwise.kubernetes.events")

EventType = Literal["Normal", "Warning"]


class EventRecorder:
    def __init__(self, client: AsyncClient, instance: str) -> None:
        self.client = client
        self.instance = instance

    async def record(
        self,
        namespace: str,
        rollout: str,
        uid: str | None,
        kind: EventType,
        reason: str,
        message: str,
        *,
        involved: str = "Rollout",
    ) -> None:
        """An Event about the Rollout `rollout` (or another Rollwise object of kind `involved`)."""
        log.info("%s/%s: %s %s: %s", namespace, rollout, kind, reason, message)
        now = datetime.now(UTC).replace(microsecond=0)
        event = Event(
            metadata=ObjectMeta(name=f"{rollout}.{uuid.uuid4().hex[:16]}", namespace=namespace),
            involvedObject=ObjectReference(
                apiVersion=API_VERSION, kind=involved, name=rollout, namespace=namespace, uid=uid
            ),
            reason=reason,
            # The API server refuses messages over 1 kB; the status keeps the whole text.
            message=message[:1000],
            type=kind,
            count=1,
            firstTimestamp=now,
            lastTimestamp=now,
            source=EventSource(component=COMPONENT),
            reportingComponent=f"rollwise.dev/{COMPONENT}",
            reportingInstance=self.instance,
        )
        try:
            await self.client.create(event)
        except ApiError as exc:  # an event lost is no reason to fail the reconcile
            log.warning("could not record event %s on %s/%s: %s", reason, namespace, rollout, exc)
