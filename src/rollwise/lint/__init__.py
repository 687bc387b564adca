"""`rollwise lint`: load every file, then check what the models alone cannot (references between
resources, router capabilities, CEL, images), and report every problem with file:line:column."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rollwise.lint.analysis import Templates, check_template
from rollwise.lint.context import Checker
from rollwise.lint.flags import check_flagset
from rollwise.lint.rollout import check_rollout
from rollwise.spec.analysis import AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate
from rollwise.spec.flags import FlagSet
from rollwise.spec.loader import Foreign, Loaded, load_file
from rollwise.spec.problems import Problem, SpecError
from rollwise.spec.rollout import Rollout

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass
class LintResult:
    problems: list[Problem] = field(default_factory=list)
    loaded: list[Loaded] = field(default_factory=list)
    foreign: list[Foreign] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def expand(paths: Iterable[str | Path]) -> list[Path]:
    """Files named directly, plus every YAML file under a named directory."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix in YAML_SUFFIXES and f.is_file())
        else:
            out.append(p)
    return out


def lint_loaded(loaded: list[Loaded]) -> list[Problem]:
    templates = Templates()
    problems: list[Problem] = []
    where: dict[int, Loaded] = {}
    flag_sets: set[tuple[str, str]] = set()
    for item in loaded:
        res = item.resource
        if isinstance(res, FlagSet):
            flag_sets.add((res.metadata.namespace or "", res.metadata.name))
        if isinstance(res, AnalysisTemplate | ClusterAnalysisTemplate):
            first = templates.add(res)
            where.setdefault(id(first), item)
            if first is not res and first.spec != res.spec:
                at = where[id(first)].document
                problems.append(
                    item.document.problem(
                        ("metadata", "name"),
                        f"{res.kind} {res.metadata.name!r} is also defined at {at.file}:{at.start[0]} with "
                        "different content; one would replace the other",
                    )
                )
    for item in loaded:
        c = Checker(item.document)
        res = item.resource
        if isinstance(res, Rollout):
            check_rollout(c, res, templates)
            ref = res.spec.feature_flags
            if ref is not None and (res.metadata.namespace or "", ref.flag_set) not in flag_sets:
                c.warn(
                    ("spec", "featureFlags", "flagSet"),
                    f"FlagSet {ref.flag_set!r} is not among the linted files; it must exist where the rollout runs",
                )
        elif isinstance(res, AnalysisTemplate | ClusterAnalysisTemplate | AnalysisRun):
            check_template(c, res)
        elif isinstance(res, FlagSet):
            check_flagset(c, res)
        problems += c.problems
    return problems


def lint_paths(paths: Iterable[str | Path]) -> LintResult:
    result = LintResult()
    for path in expand(paths):
        try:
            loaded, foreign = load_file(path)
        except SpecError as exc:
            result.problems += exc.problems
            continue
        result.loaded += loaded
        result.foreign += foreign
    result.problems += lint_loaded(result.loaded)
    result.problems.sort()
    return result
