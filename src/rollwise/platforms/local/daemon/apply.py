"""`POST /v1/apply`: load, lint and store multi-document YAML texts (one per file), all of them or
nothing: every file is checked before any is stored, and all are stored in one transaction.

Beyond lint, the local platform refuses what it cannot carry out (a step it cannot do is an
error at apply time, never a silent no-op): workloads other than `process`, routers other than its
own proxy, A/B stickiness by header (the proxy keeps users by cookie), listener ports used twice,
and documents of other API groups. Templates already applied count as known to lint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

from rollwise.lint import lint_loaded
from rollwise.lint.context import Checker
from rollwise.platforms.local.store import Store
from rollwise.spec.analysis import AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate
from rollwise.spec.flags import FlagSet
from rollwise.spec.loader import Foreign, Loaded, load_text
from rollwise.spec.problems import Problem, SpecError
from rollwise.spec.rollout import Rollout

TEMPLATE_KINDS = ("AnalysisTemplate", "ClusterAnalysisTemplate")
# Applied before and not redefined in the file: lint knows them (templates, and FlagSets a
# rollout's featureFlags names).
KNOWN_KINDS = (*TEMPLATE_KINDS, "FlagSet")


@dataclass
class Applied:
    kind: str
    name: str
    generation: int
    changed: bool
    namespace: str = ""
    file: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "generation": self.generation, "changed": self.changed}


@dataclass
class ApplyResult:
    applied: list[Applied] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


def check(store: Store, text: str, file: str) -> tuple[list[Loaded], list[Problem]]:
    """The resources of `text` and every problem found (errors and warnings)."""
    return check_files(store, [(text, file)])


def check_files(store: Store, files: list[tuple[str, str]]) -> tuple[list[Loaded], list[Problem]]:
    """The resources of every (text, file) and every problem found, all files checked together:
    a template in one file is known to a rollout in another, and a listener port taken in one
    file is taken for the others."""
    loaded: list[Loaded] = []
    problems: list[Problem] = []
    names = {file for _, file in files}
    for text, file in files:
        try:
            here, foreign = load_text(text, file)
        except SpecError as exc:
            problems += exc.problems
            continue
        problems += [_foreign(f) for f in foreign]
        if not here and not foreign:
            problems.append(Problem(file, 0, 0, "<file>", "no resources in the file"))
        loaded += here
    known = _stored_templates(store, loaded)
    problems += [p for p in lint_loaded(loaded + known) if p.file in names]
    taken = _ports_of_others(store, {i.resource.metadata.name for i in loaded if isinstance(i.resource, Rollout)})
    for item in loaded:
        c = Checker(item.document)
        res = item.resource
        if isinstance(res, Rollout):
            _check_rollout(c, res, taken)
        elif isinstance(res, AnalysisRun):
            c.error(("kind",), "analysis runs are started by the control plane; apply an AnalysisTemplate instead")
        problems += c.problems
    order = {file: i for i, (_, file) in enumerate(files)}
    return loaded, sorted(set(problems), key=lambda p: (order.get(p.file, len(order)), p))


def apply(store: Store, text: str, file: str) -> ApplyResult:
    return apply_files(store, [(text, file)])


def apply_files(store: Store, files: list[tuple[str, str]]) -> ApplyResult:
    """Store every resource of every file in one transaction, or none when any file has an error."""
    loaded, problems = check_files(store, files)
    result = ApplyResult(problems=problems)
    if result.errors:
        return result
    with store.transaction():
        for item in loaded:
            res = item.resource
            doc = {k: v for k, v in item.document.data.items() if k != "status"}
            yaml_text = yaml.safe_dump(doc, sort_keys=False)
            name = res.metadata.name
            if isinstance(res, Rollout):
                generation, changed = store.apply_rollout(
                    name, doc, yaml_text, namespace=res.metadata.namespace or "default"
                )
            else:
                namespace = "" if isinstance(res, ClusterAnalysisTemplate) else res.metadata.namespace or "default"
                generation, changed = store.apply_resource(res.kind, namespace, name, doc, yaml_text)
            namespace = res.metadata.namespace or "default"
            result.applied.append(Applied(res.kind, name, generation, changed, namespace, item.document.file))
    return result


def _foreign(item: Foreign) -> Problem:
    data = item.document.data
    what = f"{data.get('kind', '?')} of {data.get('apiVersion', '?')}"
    return item.document.problem(
        ("apiVersion",), f"the local platform applies rollwise.dev resources only, not a {what}"
    )


def _stored_templates(store: Store, loaded: list[Loaded]) -> list[Loaded]:
    """Applied templates not redefined here, loaded again so that lint checks references and
    arguments against them."""
    here = {
        (i.resource.kind, i.resource.metadata.name)
        for i in loaded
        if isinstance(i.resource, AnalysisTemplate | ClusterAnalysisTemplate | FlagSet)
    }
    out: list[Loaded] = []
    for kind in KNOWN_KINDS:
        for record in store.list_resources(kind):
            if (kind, record.name) in here:
                continue
            try:
                docs, _ = load_text(record.spec_yaml, f"(applied {kind} {record.name})")
            except SpecError:
                continue
            out += docs
    return out


def _ports_of_others(store: Store, names: set[str]) -> dict[int, str]:
    taken: dict[int, str] = {}
    for record in store.list_rollouts():
        if record.name in names:
            continue
        listen = (record.spec.get("spec") or {}).get("listen") or {}
        for key in ("port", "previewPort"):
            if isinstance(listen.get(key), int):
                taken[listen[key]] = record.name
        # Ports chosen free for rollouts without listen ports are theirs as long as they run.
        for url in (record.status.get("endpoints") or {}).values():
            port = urlsplit(str(url)).port
            if port is not None:
                taken[port] = record.name
    return taken


def _check_rollout(c: Checker, ro: Rollout, taken: dict[int, str]) -> None:
    spec = ro.spec
    if spec.process is None:
        field_name = "template" if spec.template is not None else "workloadRef"
        c.error(
            ("spec", field_name),
            "the local platform runs `process` workloads (a command per replica); "
            "a Kubernetes pod template or workloadRef needs the Kubernetes platform",
        )
    strategy = spec.strategy
    for key, st in (("canary", strategy.canary), ("shadow", strategy.shadow), ("abTest", strategy.ab_test)):
        routing = getattr(st, "traffic_routing", None)
        if routing is not None and routing.router != "local":
            c.error(
                ("spec", "strategy", key, "trafficRouting"),
                f"the local platform routes with its own proxy (trafficRouting: {{local: {{}}}}), not {routing.router}",
            )
    if strategy.ab_test is not None and strategy.ab_test.sticky_by.header is not None:
        c.error(
            ("spec", "strategy", "abTest", "stickyBy", "header"),
            "the local proxy keeps a user on a variant with a cookie; use stickyBy: {cookie: NAME}",
        )
    listen = spec.listen
    if listen is not None:
        if listen.port is not None and listen.port == listen.preview_port:
            c.error(("spec", "listen", "previewPort"), "must differ from port")
        for key, port in (("port", listen.port), ("previewPort", listen.preview_port)):
            if port is not None and port in taken:
                c.error(("spec", "listen", key), f"port {port} is already the listener of rollout {taken[port]!r}")
            if port is not None:
                taken[port] = ro.metadata.name
