"""Reading and editing objects that belong to the user (a VirtualService, an HTTPRoute): read,
change in memory, write back with the resourceVersion that was read, and start over on 409
Conflict. A PUT of the whole object keeps every field Rollwise does not touch, whoever owns it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from lightkube import ApiError, AsyncClient

from rollwise.platforms.kubernetes.routers.base import RouterError

Obj = dict[str, Any]
ATTEMPTS = 8


async def read(client: AsyncClient, res: Any, name: str, namespace: str, what: str) -> Obj:
    try:
        obj = await client.get(res, name, namespace=namespace)
    except ApiError as e:
        if e.status.code == 404:
            raise RouterError(f"{what} {namespace}/{name} not found") from None
        raise RouterError(f"reading {what} {namespace}/{name}: {e.status.message}") from None
    out: Obj = obj.to_dict()
    return out


async def read_optional(client: AsyncClient, res: Any, name: str, namespace: str, what: str) -> Obj | None:
    try:
        return await read(client, res, name, namespace, what)
    except RouterError as e:
        if str(e).endswith("not found"):
            return None
        raise


async def update(
    client: AsyncClient,
    res: Any,
    name: str,
    namespace: str,
    what: str,
    change: Callable[[Obj], Obj],
    field_manager: str,
) -> Obj:
    """Apply `change` (a function of a copy of the live object) until a write succeeds without a
    conflict; no write at all when it changes nothing. Returns what the server stored."""
    for _ in range(ATTEMPTS):
        live = await read(client, res, name, namespace, what)
        wanted = change(copy.deepcopy(live))
        if wanted == live:
            return live
        # The server keeps field ownership when the body carries no managedFields.
        wanted.get("metadata", {}).pop("managedFields", None)
        try:
            stored = await client.replace(res.from_dict(wanted), field_manager=field_manager)
        except ApiError as e:
            if e.status.code == 409:
                continue
            raise RouterError(f"writing {what} {namespace}/{name} was refused: {e.status.message}") from None
        out: Obj = stored.to_dict()
        return out
    raise RouterError(f"{what} {namespace}/{name} changed under every one of {ATTEMPTS} writes (409 Conflict)")
