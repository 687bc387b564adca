"""Checks of analysis templates and of the references Rollouts make to them."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from rollwise.lint.cel import compile_error
from rollwise.lint.context import Checker
from rollwise.spec.analysis import AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate, Metric
from rollwise.spec.analysis_ref import RolloutAnalysis
from rollwise.spec.common import duration_seconds
from rollwise.spec.problems import FieldPath
from rollwise.spec.rollout import Rollout

_ARG_REF = re.compile(r"\{\{\s*args\.([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}")
_FIELD_REF_ROOTS = ("metadata.", "spec.", "status.")


@dataclass
class Templates:
    """Analysis templates among the files being linted, to check references against."""

    namespaced: dict[tuple[str, str], AnalysisTemplate] = field(default_factory=dict)
    cluster: dict[str, ClusterAnalysisTemplate] = field(default_factory=dict)

    def add(self, t: AnalysisTemplate | ClusterAnalysisTemplate) -> AnalysisTemplate | ClusterAnalysisTemplate:
        """Record `t` unless one of the same name and scope came first; return the one kept."""
        if isinstance(t, ClusterAnalysisTemplate):
            return self.cluster.setdefault(t.metadata.name, t)
        return self.namespaced.setdefault((t.metadata.namespace or "", t.metadata.name), t)

    def find(
        self, name: str, cluster_scope: bool, namespace: str | None
    ) -> AnalysisTemplate | ClusterAnalysisTemplate | None:
        if cluster_scope:
            return self.cluster.get(name)
        return self.namespaced.get((namespace or "", name))


def check_analysis_ref(c: Checker, ref: RolloutAnalysis, path: FieldPath, ro: Rollout, templates: Templates) -> None:
    given: dict[str, int] = {}
    for i, arg in enumerate(ref.args or []):
        if arg.name in given:
            c.error((*path, "args", i, "name"), f"argument {arg.name!r} is given twice")
        given[arg.name] = i
        if arg.value_from is not None and not arg.value_from.field_ref.field_path.startswith(_FIELD_REF_ROOTS):
            c.error(
                (*path, "args", i, "valueFrom", "fieldRef", "fieldPath"),
                "must start with metadata., spec. or status. (a field of this Rollout)",
            )
    declared: set[str] = set()
    all_found = True
    for i, t in enumerate(ref.templates):
        found: AnalysisTemplate | ClusterAnalysisTemplate | None
        found = templates.find(t.template_name, t.cluster_scope, ro.metadata.namespace)
        if found is None:
            all_found = False
            kind = "ClusterAnalysisTemplate" if t.cluster_scope else "AnalysisTemplate"
            c.warn(
                (*path, "templates", i, "templateName"),
                f"{kind} {t.template_name!r} is not among the linted files; it must exist where the rollout runs",
            )
            continue
        for declared_arg in found.spec.args or []:
            declared.add(declared_arg.name)
            if declared_arg.value is None and declared_arg.value_from is None and declared_arg.name not in given:
                c.error(
                    (*path, "args"),
                    f"template {t.template_name!r} needs argument {declared_arg.name!r}, which is not given",
                )
    if all_found:
        for name, i in given.items():
            if name not in declared:
                c.error(
                    (*path, "args", i, "name"),
                    _undeclared(f"no referenced template declares an argument {name!r}", name, declared),
                )


def check_template(c: Checker, t: AnalysisTemplate | ClusterAnalysisTemplate | AnalysisRun) -> None:
    sp: FieldPath = ("spec",)
    declared = {a.name for a in t.spec.args or []}
    seen: set[str] = set()
    for i, arg in enumerate(t.spec.args or []):
        if arg.name in seen:
            c.error((*sp, "args", i, "name"), f"argument {arg.name!r} is declared twice")
        seen.add(arg.name)
    names: set[str] = set()
    for i, metric in enumerate(t.spec.metrics):
        mp = (*sp, "metrics", i)
        if metric.name in names:
            c.error((*mp, "name"), f"metric name {metric.name!r} is used twice")
        names.add(metric.name)
        _check_metric(c, metric, mp, declared)


def _check_metric(c: Checker, m: Metric, mp: FieldPath, declared: set[str]) -> None:
    for key, expr in (("successCondition", m.success_condition), ("failureCondition", m.failure_condition)):
        if expr is not None:
            problem = compile_error(expr)
            if problem:
                c.error((*mp, key), problem)
    if m.provider.job is None and m.success_condition is None and m.failure_condition is None:
        c.error(
            mp,
            f"set successCondition or failureCondition: a {m.provider.name} measurement has no verdict of its own",
        )
    if m.count is not None and m.count > 1 and m.interval is None:
        c.error((*mp, "interval"), f"required when count is more than 1 (count is {m.count})")
    if m.interval is not None and duration_seconds(m.interval) == 0:
        c.error((*mp, "interval"), "must be longer than 0")
    prov = m.provider
    texts: list[tuple[FieldPath, str]] = []
    if prov.prometheus is not None:
        texts += [
            ((*mp, "provider", "prometheus", "query"), prov.prometheus.query),
            ((*mp, "provider", "prometheus", "address"), prov.prometheus.address),
        ]
        if prov.prometheus.range is not None and duration_seconds(prov.prometheus.range.window) == 0:
            c.error((*mp, "provider", "prometheus", "range", "window"), "must be longer than 0")
        if prov.prometheus.range is not None and duration_seconds(prov.prometheus.range.step) == 0:
            c.error((*mp, "provider", "prometheus", "range", "step"), "must be longer than 0")
    if prov.webhook is not None:
        texts.append(((*mp, "provider", "webhook", "url"), prov.webhook.url))
        if prov.webhook.body is not None:
            texts.append(((*mp, "provider", "webhook", "body"), prov.webhook.body))
        if prov.webhook.body is not None and prov.webhook.method == "GET":
            c.error((*mp, "provider", "webhook", "body"), "a GET request carries no body; use method: POST")
    if prov.job is not None and prov.job.command is not None:
        texts += [((*mp, "provider", "job", "command", k), arg) for k, arg in enumerate(prov.job.command)]
    for where, text in texts:
        for name in _ARG_REF.findall(text):
            if name not in declared:
                c.error(
                    where,
                    _undeclared(
                        f"uses {{{{args.{name}}}}}, but the template declares no argument {name!r}", name, declared
                    ),
                )


def _undeclared(message: str, name: str, declared: set[str]) -> str:
    """`message`, plus the nearest declared argument or the list of them."""
    hint = difflib.get_close_matches(name, sorted(declared), n=1)
    if hint:
        return f"{message}; did you mean {hint[0]!r}?"
    if declared:
        return f"{message} (declared: {', '.join(sorted(declared))})"
    return f"{message} (it declares none)"
