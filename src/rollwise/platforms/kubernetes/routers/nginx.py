"""ingress-nginx: a canary Ingress `<stable ingress>-canary` beside the user's Ingress, owned by
Rollwise outright and written with server-side apply.

It copies the stable Ingress's rules, keeping only the paths that send to the stable Service and
sending them to the canary Service, and carries the canary annotations (under annotationPrefix):
`canary: "true"`, `canary-weight`, and for one match route `canary-by-header` with
`canary-by-header-value` (exact) or `canary-by-header-pattern` (regex), or `canary-by-cookie` (a
cookie whose value is "always"). When nothing goes to the canary (weight 0, no match route) the
canary Ingress is deleted. The user's Ingress is only read."""

from __future__ import annotations

import copy
from typing import Any, ClassVar, cast

from lightkube import ApiError, AsyncClient
from lightkube.resources.networking_v1 import Ingress

from rollwise.engine.plan import RouteTable
from rollwise.platforms.kubernetes.routers import objects
from rollwise.platforms.kubernetes.routers.base import (
    Backends,
    ObservedMatch,
    ObservedRoutes,
    RouterError,
)
from rollwise.platforms.kubernetes.routers.capabilities import require
from rollwise.spec.match import RouteMatch, StringMatch
from rollwise.spec.rollout import Rollout
from rollwise.spec.traffic import ROUTER_CAPABILITIES, Capability, NginxRouting

ROLLOUT_LABEL = "rollwise.dev/rollout"
Obj = dict[str, Any]


class NginxRouter:
    kind: ClassVar[str] = "nginx"
    capabilities: ClassVar[frozenset[Capability]] = ROUTER_CAPABILITIES["nginx"]

    def __init__(
        self,
        client: AsyncClient,
        namespace: str,
        routing: NginxRouting,
        field_manager: str,
        stable_service: str,
        canary_service: str,
        rollout: Rollout,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.routing = routing
        self.field_manager = field_manager
        self.stable = stable_service
        self.canary = canary_service
        self.rollout = rollout
        self.name = f"{routing.ingress}-canary"

    def _key(self, short: str) -> str:
        return f"{self.routing.annotation_prefix}/{short}"

    # --- apply ------------------------------------------------------------------------------------

    async def apply(self, table: RouteTable, backends: Backends) -> None:
        require(self.kind, self.capabilities, table)
        weight = await self._canary_weight(table, backends)
        annotations = self._match_annotations(table, backends)
        stable = await objects.read(self.client, Ingress, self.routing.ingress, self.namespace, "Ingress")
        current = await objects.read_optional(self.client, Ingress, self.name, self.namespace, "Ingress")
        if current is not None and (current["metadata"].get("labels") or {}).get(ROLLOUT_LABEL) != self._rollout_name:
            raise RouterError(
                f"Ingress {self.namespace}/{self.name} exists and is not this rollout's canary Ingress "
                f"(no label {ROLLOUT_LABEL}={self._rollout_name})"
            )
        if weight == 0 and not annotations:
            if current is not None:
                try:
                    await self.client.delete(Ingress, self.name, namespace=self.namespace)
                except ApiError as e:
                    if e.status.code != 404:
                        raise RouterError(
                            f"deleting Ingress {self.namespace}/{self.name}: {e.status.message}"
                        ) from None
            return
        extra = {self._key(k): v for k, v in (self.routing.additional_ingress_annotations or {}).items()}
        # canary-weight counts out of canary-weight-total (100 unless the user sets another).
        total = _int(extra.get(self._key("canary-weight-total")), 100)
        written = str(round(weight * total / 100))
        annotations = {self._key("canary"): "true", self._key("canary-weight"): written} | annotations
        for key, value in extra.items():
            annotations.setdefault(key, value)
        body = self._canary_ingress(stable, annotations, backends)
        try:
            await self.client.apply(
                cast(Ingress, Ingress.from_dict(body)), field_manager=self.field_manager, force=True
            )
        except ApiError as e:
            raise RouterError(f"writing Ingress {self.namespace}/{self.name} was refused: {e.status.message}") from None

    def _percent(self, annotations: dict[str, str]) -> int:
        """The canary's share in percent, from canary-weight out of canary-weight-total."""
        weight = int(annotations.get(self._key("canary-weight"), "0"))
        total = int(annotations.get(self._key("canary-weight-total"), "100"))
        if total <= 0:
            raise ValueError(total)
        return round(100 * weight / total)

    @property
    def _rollout_name(self) -> str:
        return self.rollout.metadata.name

    async def _canary_weight(self, table: RouteTable, backends: Backends) -> int:
        if not table.weights:
            # Nothing ready to serve: the split stays as it is.
            current = await objects.read_optional(self.client, Ingress, self.name, self.namespace, "Ingress")
            annotations = (current or {}).get("metadata", {}).get("annotations") or {}
            try:
                return self._percent(annotations)
            except ValueError:
                return 0
        weight = 0
        for revision, w in table.weights.items():
            service = backends.service_of(revision)
            if service == self.canary:
                weight += w
            elif service != self.stable and w > 0:
                raise RouterError(
                    f"the nginx router splits between {self.stable} and {self.canary} only, not {service}"
                )
        return weight

    def _match_annotations(self, table: RouteTable, backends: Backends) -> dict[str, str]:
        if not table.matches:
            return {}
        if len(table.matches) > 1:
            names = ", ".join(m.name for m in table.matches)
            raise RouterError(f"the nginx router holds one match route at a time, the table has {names}")
        (route,) = table.matches
        if backends.service_of(route.revision) != self.canary:
            raise RouterError(
                f"match route {route.name}: the nginx router sends matched requests to the canary Service only"
            )
        conditions = [c for m in route.matches for c in m.conditions()]
        if len(conditions) != 1:
            raise RouterError(f"match route {route.name}: the nginx router takes one condition per route")
        ((kind, cond),) = conditions
        if kind == "header" and cond.kind == "exact":
            return {self._key("canary-by-header"): cond.name, self._key("canary-by-header-value"): cond.value}
        if kind == "header" and cond.kind == "regex":
            return {self._key("canary-by-header"): cond.name, self._key("canary-by-header-pattern"): cond.value}
        if kind == "cookie" and cond.kind == "exact" and cond.value == "always":
            return {self._key("canary-by-cookie"): cond.name}
        raise RouterError(
            f"match route {route.name}: the nginx router cannot match {kind} {cond.name} by {cond.kind}"
            + (f" {cond.value!r} (a cookie must be 'always')" if kind == "cookie" else "")
        )

    def _canary_ingress(self, stable: Obj, annotations: dict[str, str], backends: Backends) -> Obj:
        spec = stable.get("spec") or {}
        rules = []
        for rule in spec.get("rules") or []:
            paths = []
            for path in (rule.get("http") or {}).get("paths") or []:
                service = (path.get("backend") or {}).get("service") or {}
                if service.get("name") != self.stable:
                    continue
                p = copy.deepcopy(path)
                port = {"number": backends.port} if backends.port is not None else service.get("port")
                p["backend"] = {"service": {"name": self.canary} | ({"port": port} if port else {})}
                paths.append(p)
            if paths:
                rules.append({k: v for k, v in rule.items() if k != "http"} | {"http": {"paths": paths}})
        if not rules:
            raise RouterError(
                f"Ingress {self.namespace}/{self.routing.ingress} has no path sending to {self.stable}; "
                "the canary Ingress copies those paths"
            )
        canary_spec: Obj = {"rules": rules}
        if spec.get("ingressClassName"):
            canary_spec["ingressClassName"] = spec["ingressClassName"]
        metadata: Obj = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": {ROLLOUT_LABEL: self._rollout_name},
            "annotations": annotations,
        }
        uid = (self.rollout.metadata.model_extra or {}).get("uid")
        if uid:
            metadata["ownerReferences"] = [
                {
                    "apiVersion": self.rollout.api_version,
                    "kind": "Rollout",
                    "name": self._rollout_name,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]
        return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata, "spec": canary_spec}

    # --- observe ----------------------------------------------------------------------------------

    def applied(self, backends: Backends) -> ObservedRoutes | None:
        return None  # two Ingresses, one of them maybe not written: `observe` reads both

    async def observe(self, backends: Backends) -> ObservedRoutes:
        problems: list[str] = []
        stable = await objects.read(self.client, Ingress, self.routing.ingress, self.namespace, "Ingress")
        if not _sends_to(stable, self.stable):
            problems.append(f"Ingress {self.routing.ingress} no longer sends any path to {self.stable}")
        canary = await objects.read_optional(self.client, Ingress, self.name, self.namespace, "Ingress")
        if canary is None:
            return ObservedRoutes(weights={self.stable: 100}, problems=tuple(problems))
        annotations = canary["metadata"].get("annotations") or {}
        if annotations.get(self._key("canary")) != "true":
            problems.append(f'Ingress {self.name} is not marked {self._key("canary")}: "true"')
            return ObservedRoutes(weights={self.stable: 100}, problems=tuple(problems))
        others = _services(canary) - {self.canary}
        if others:
            problems.append(f"Ingress {self.name} sends to {', '.join(sorted(others))}, not only {self.canary}")
        try:
            weight = self._percent(annotations)
        except ValueError:
            weight = 0
            problems.append(f"Ingress {self.name} has a canary-weight or canary-weight-total that is not a number")
        weights = {self.stable: 100 - weight, self.canary: weight}
        matches: list[RouteMatch] = []
        header = annotations.get(self._key("canary-by-header"))
        if header:
            value = annotations.get(self._key("canary-by-header-value"))
            pattern = annotations.get(self._key("canary-by-header-pattern"))
            if value is not None:
                cond = StringMatch(name=header, exact=value)
            elif pattern is not None:
                cond = StringMatch(name=header, regex=pattern)
            else:
                cond = StringMatch(name=header, exact="always")  # ingress-nginx's own default value
            matches.append(RouteMatch(headers=[cond]))
        cookie = annotations.get(self._key("canary-by-cookie"))
        if cookie:
            matches.append(RouteMatch(cookies=[StringMatch(name=cookie, exact="always")]))
        observed = (ObservedMatch(self.canary, tuple(matches)),) if matches else ()
        return ObservedRoutes(
            weights={s: w for s, w in weights.items() if w > 0}, matches=observed, problems=tuple(problems)
        )


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        raise RouterError(f"additionalIngressAnnotations: {text!r} is not a whole number") from None


def _services(ingress: Obj) -> set[str]:
    out = set()
    for rule in (ingress.get("spec") or {}).get("rules") or []:
        for path in (rule.get("http") or {}).get("paths") or []:
            name = ((path.get("backend") or {}).get("service") or {}).get("name")
            if name:
                out.add(str(name))
    return out


def _sends_to(ingress: Obj, service: str) -> bool:
    return service in _services(ingress)
