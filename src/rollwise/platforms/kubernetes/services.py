"""The strategy's Services (stable, canary, active, preview) select one revision each by the
`rollwise.dev/revision` label, beside the user's own selector labels. A selector moves to a
revision only when every one of its pods is ready: a Service must never send users to a revision
still starting (a lesson from Argo Rollouts' history)."""

from __future__ import annotations

from dataclasses import dataclass, field

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.models.core_v1 import ServiceSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Service

from rollwise.engine import Observed, Plan
from rollwise.platforms.kubernetes.names import FIELD_MANAGER, REVISION_LABEL
from rollwise.platforms.kubernetes.routers.base import Backends, Role
from rollwise.spec.rollout import Rollout


@dataclass(frozen=True)
class ServiceTarget:
    role: str  # "stable", "canary", "active", "preview"
    service: str
    revision: str


def targets(rollout: Rollout, plan: Plan) -> list[ServiceTarget]:
    """Which revision each Service the strategy names should select, as the plan stands."""
    strategy = rollout.spec.strategy
    status = plan.status
    stable = status.stable_revision
    current = status.current_revision
    out: list[ServiceTarget] = []
    if strategy.blue_green is not None:
        bg = strategy.blue_green
        weights = {r: w for r, w in plan.routes.weights.items() if w > 0}
        active = max(weights, key=lambda r: (weights[r], r)) if weights else stable
        # The preview the engine chose, even before its pods are ready: the readiness gate below
        # holds the selector until they all are.
        chosen = status.blue_green.preview_revision if status.blue_green is not None else None
        if chosen is not None and (status.abort is not None or plan.replicas.get(chosen, 0) == 0):
            chosen = None  # aborted or scaled down: the preview Service shows what serves
        preview = plan.routes.preview or chosen or active
        if bg.active_service and active:
            out.append(ServiceTarget("active", bg.active_service, active))
        if bg.preview_service and preview:
            out.append(ServiceTarget("preview", bg.preview_service, preview))
        return out
    holder = strategy.canary or strategy.shadow or strategy.ab_test
    if holder is None:
        return out
    canary = current if current and current != stable and plan.replicas.get(current, 0) > 0 else stable
    if status.abort is not None and not _still_routed(plan, current):
        canary = stable
    if holder.stable_service and stable:
        out.append(ServiceTarget("stable", holder.stable_service, stable))
    if holder.canary_service and canary:
        out.append(ServiceTarget("canary", holder.canary_service, canary))
    return out


@dataclass
class ServiceResult:
    backends: Backends
    switched: list[tuple[str, str]] = field(default_factory=list)  # (service, revision)
    waiting: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def all_ready(observed: Observed, revision: str) -> bool:
    o = observed.of(revision)
    return o.desired > 0 and o.ready >= o.desired


def roles(plan: Plan) -> dict[str, Role]:
    """The stable and canary revisions, for routers that address revisions by role (Istio
    DestinationRule subsets)."""
    status = plan.status
    out: dict[str, Role] = {}
    if status.stable_revision is not None:
        out[status.stable_revision] = "stable"
    current = status.current_revision
    if (
        current is not None
        and current != status.stable_revision
        and (status.abort is None or _still_routed(plan, current))
    ):
        out[current] = "canary"
    return out


def _still_routed(plan: Plan, revision: str | None) -> bool:
    """Whether the aborted revision still receives requests: a gradual abort steps its weight
    down and a frozen one holds its routes, both through the canary Service (or subset), which
    must keep selecting it until nothing is routed to it any more."""
    if revision is None:
        return False
    return revision in plan.routes.routed() or any(m.revision == revision for m in plan.routes.mirrors)


async def converge(
    client: AsyncClient,
    namespace: str,
    wanted: list[ServiceTarget],
    observed: Observed,
    revision_roles: dict[str, Role] | None = None,
) -> ServiceResult:
    """Point each Service at its revision when that revision is fully ready; the Backends map
    says which Service selects which revision now (what a router may send traffic to)."""
    selects: dict[str, str] = {}
    result = ServiceResult(backends=Backends(services={}))
    for t in wanted:
        try:
            svc = await client.get(Service, t.service, namespace=namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                result.problems.append(f"Service {namespace}/{t.service} ({t.role}Service) not found")
                continue
            raise
        selector = dict((svc.spec.selector if svc.spec is not None else None) or {})
        now = selector.get(REVISION_LABEL)
        if now != t.revision:
            if all_ready(observed, t.revision):
                await client.apply(
                    _selector_patch(namespace, t.service, t.revision),
                    field_manager=FIELD_MANAGER,
                    force=True,
                )
                result.switched.append((t.service, t.revision))
                now = t.revision
            else:
                result.waiting.append(f"{t.role}Service {t.service} waits for every pod of {t.revision} to be ready")
        if now is not None:
            # A revision behind two Services (stable == canary at rest) keeps the first: stable
            # and active come first in `targets`.
            selects.setdefault(now, t.service)
    result.backends = Backends(services=selects, roles=revision_roles or {})
    return result


def _selector_patch(namespace: str, name: str, revision: str) -> Service:
    # Server-side apply of the one key Rollwise owns: the user's own selector labels, ports and
    # everything else stay theirs.
    return Service(
        metadata=ObjectMeta(name=name, namespace=namespace), spec=ServiceSpec(selector={REVISION_LABEL: revision})
    )
