"""Cross-field checks of a Rollout that the models alone cannot express."""

from __future__ import annotations

import difflib

from rollwise.lint.analysis import Templates, check_analysis_ref
from rollwise.lint.context import Checker
from rollwise.lint.images import image_problem
from rollwise.lint.podtemplate import check_pod_template
from rollwise.lint.routing import cannot, check_matches, check_router_fits_workload, check_services, check_steps
from rollwise.spec.analysis import BuiltinMetric
from rollwise.spec.common import duration_seconds, resolve_int_or_percent
from rollwise.spec.problems import FieldPath
from rollwise.spec.rollout import Rollout
from rollwise.spec.strategies.abtest import ABTestStrategy
from rollwise.spec.strategies.bluegreen import BlueGreenStrategy
from rollwise.spec.strategies.canary import CanaryStrategy
from rollwise.spec.strategies.shadow import ShadowStrategy
from rollwise.spec.traffic import routers_that_can


def check_rollout(c: Checker, ro: Rollout, templates: Templates) -> None:
    spec = ro.spec
    s: FieldPath = ("spec",)
    if spec.template is not None:
        check_workload(c, ro)
    if spec.listen is not None and spec.process is None:
        c.error(("spec", "listen"), "local platform only: on Kubernetes, Services decide where the rollout listens")
    st = spec.strategy
    sp: FieldPath = (*s, "strategy")
    if st.rolling_update is not None:
        ru = st.rolling_update
        _check_surge(c, ru.max_surge, ru.max_unavailable, ru.model_fields_set, spec.replicas, (*sp, "rollingUpdate"))
    if st.blue_green is not None:
        _blue_green(c, st.blue_green, (*sp, "blueGreen"), spec.replicas, ro, templates)
    if st.canary is not None:
        _canary(c, st.canary, (*sp, "canary"), ro, templates)
    if st.shadow is not None:
        _shadow(c, st.shadow, (*sp, "shadow"), ro, templates)
    if st.ab_test is not None:
        _ab_test(c, st.ab_test, (*sp, "abTest"), ro, templates)


def _check_surge(
    c: Checker, max_surge: int | str, max_unavailable: int | str, written: set[str], replicas: int, p: FieldPath
) -> None:
    """`written` holds the fields the user set (pydantic's model_fields_set): the problem points at
    one of them, and a value left at its default says so."""
    total = max(replicas, 1)
    surge = resolve_int_or_percent(max_surge, total, round_up=True)
    unavailable = resolve_int_or_percent(max_unavailable, total, round_up=False)
    if surge or unavailable:
        return

    def shown(name: str, value: int | str, resolved: int, rounding: str) -> str:
        text = str(value) if name in written else f"{value} by default"
        if isinstance(value, int):
            return text
        of = f"of {total} replica{'s' if total != 1 else ''}, rounded {rounding}: {resolved}"
        return f"{text} {of}" if name in written else f"{text}, {of}"

    at = "maxSurge" if "max_unavailable" not in written and "max_surge" in written else "maxUnavailable"
    c.error(
        (*p, at),
        "maxSurge and maxUnavailable cannot both be 0: nothing could ever be replaced (got maxSurge "
        f"{shown('max_surge', max_surge, surge, 'up')}, "
        f"maxUnavailable {shown('max_unavailable', max_unavailable, unavailable, 'down')})",
    )


# Past this, a scale-down delay keeps two full revisions running long after anyone could still
# want an instant undo: usually minutes typed as seconds.
LONG_SCALE_DOWN_DELAY = 3600


def _check_scale_down_delay(c: Checker, seconds: int, p: FieldPath) -> None:
    if seconds > LONG_SCALE_DOWN_DELAY:
        c.warn(
            p,
            f"{seconds} s keeps the old revision's replicas running for over an hour; "
            "the delay is in seconds (minutes or hours as seconds?)",
        )


def _workload(ro: Rollout) -> str:
    """What runs, in the words of the router check: process, pod template or workloadRef."""
    if ro.spec.process is not None:
        return "process"
    return "pod template" if ro.spec.template is not None else "workloadRef"


def check_workload(c: Checker, ro: Rollout) -> None:
    spec, template = ro.spec, ro.spec.template
    assert template is not None
    if spec.selector is None:
        c.error(("spec", "selector"), "required with a pod template: it tells which pods belong to the rollout")
    else:
        labels = (template.metadata.labels if template.metadata else None) or {}
        for key, value in (spec.selector.match_labels or {}).items():
            if key not in labels:
                c.error(
                    ("spec", "template", "metadata", "labels"),
                    f"must include {key}: {value} to match spec.selector.matchLabels (the label {key} is missing)",
                )
            elif labels[key] != value:
                c.error(
                    ("spec", "template", "metadata", "labels", key),
                    f"must be {value!r} to match spec.selector.matchLabels.{key} (got {labels[key]!r})",
                )
    for where, image in template.images():
        problem = image_problem(image, spec.immutable.images)
        if problem:
            parts = where.replace("]", "").replace("[", ".").split(".")
            path = ("spec", "template", "spec", parts[0], int(parts[1]), parts[2])
            c.error(path, problem)
    check_pod_template(c, ro)


def _blue_green(c: Checker, bg: BlueGreenStrategy, p: FieldPath, replicas: int, ro: Rollout, t: Templates) -> None:
    if ro.spec.process is None and bg.active_service is None:
        c.error((*p, "activeService"), "required on Kubernetes: the Service whose selector is switched on promotion")
    if bg.preview_service is not None and bg.preview_service == bg.active_service:
        c.error((*p, "previewService"), f"must differ from activeService (both are {bg.active_service!r})")
    if bg.auto_promotion_seconds is not None and not bg.auto_promotion_enabled:
        c.error(
            (*p, "autoPromotionSeconds"),
            "has no effect with autoPromotionEnabled: false; remove one of the two",
        )
    if bg.preview_replica_count is not None and bg.preview_replica_count > replicas:
        c.warn(
            (*p, "previewReplicaCount"),
            f"exceeds spec.replicas ({replicas}); the preview will be scaled to {replicas} on promotion",
        )
    _check_scale_down_delay(c, bg.scale_down_delay_seconds, (*p, "scaleDownDelaySeconds"))
    if bg.abort_scale_down_delay_seconds is not None:
        _check_scale_down_delay(c, bg.abort_scale_down_delay_seconds, (*p, "abortScaleDownDelaySeconds"))
        if bg.abort_scale_down_delay_seconds == 0:
            c.warn(
                (*p, "abortScaleDownDelaySeconds"),
                "0 keeps an aborted revision's replicas up until retry, undo or a new spec (as in Argo "
                "Rollouts); leave it unset to scale them down at once",
            )
    for name, ref in (
        ("prePromotionAnalysis", bg.pre_promotion_analysis),
        ("postPromotionAnalysis", bg.post_promotion_analysis),
    ):
        if ref is not None:
            check_analysis_ref(c, ref, (*p, name), ro, t)


def _canary(c: Checker, ca: CanaryStrategy, p: FieldPath, ro: Rollout, t: Templates) -> None:
    routing = ca.traffic_routing
    check_router_fits_workload(c, routing, _workload(ro), p)
    if ca.steps and ca.dynamic is not None:
        c.error((*p, "dynamic"), "use either steps or dynamic weighting, not both")
    if not ca.steps and ca.dynamic is None:
        c.warn(
            (*p, "steps"),
            "no steps and no dynamic weighting: once ready, the new revision takes all traffic at once",
        )
    if ca.dynamic is not None and routing is None:
        c.error(
            (*p, "dynamic"),
            "needs trafficRouting, which is not set (dynamic weighting moves traffic, not replicas); "
            "routers that can: " + ", ".join(routers_that_can("weight")),
        )
    _check_surge(c, ca.max_surge, ca.max_unavailable, ca.model_fields_set, ro.spec.replicas, p)
    if routing is None and "scale_down_delay_seconds" in ca.model_fields_set:
        c.warn(
            (*p, "scaleDownDelaySeconds"),
            "has no effect without trafficRouting: the stable revision shrinks as the canary grows, so "
            "nothing is left to scale down after promotion",
        )
    elif routing is not None:
        _check_scale_down_delay(c, ca.scale_down_delay_seconds, (*p, "scaleDownDelaySeconds"))
    check_services(c, routing, ca.stable_service, ca.canary_service, p)
    check_steps(c, routing, ca.steps, (*p, "steps"), allow_decreasing=ca.allow_decreasing_weights)
    for i, step in enumerate(ca.steps or []):
        if step.analysis is not None:
            check_analysis_ref(c, step.analysis, (*p, "steps", i, "analysis"), ro, t)
        if step.pause is not None and step.pause.duration is not None and duration_seconds(step.pause.duration) == 0:
            c.warn(
                (*p, "steps", i, "pause", "duration"),
                "a zero pause does nothing; remove it or give a duration",
            )
    if ca.analysis is not None:
        check_analysis_ref(c, ca.analysis, (*p, "analysis"), ro, t)
        n = len(ca.steps or [])
        if ca.analysis.starting_step is not None and ca.analysis.starting_step >= max(n, 1):
            c.error((*p, "analysis", "startingStep"), f"must be less than the number of steps ({n})")
    dyn = ca.dynamic
    if dyn is not None:
        dp = (*p, "dynamic")
        if dyn.min_step_weight > dyn.max_step_weight:
            c.error((*dp, "minStepWeight"), f"must not exceed maxStepWeight ({dyn.max_step_weight})")
        if dyn.min_step_weight == 0:
            c.error((*dp, "minStepWeight"), "must be at least 1, or the weight could never rise")
        if dyn.start_weight > dyn.max_weight:
            c.error((*dp, "startWeight"), f"must not exceed maxWeight ({dyn.max_weight})")
        if dyn.max_weight == 0:
            c.error((*dp, "maxWeight"), "must be at least 1")
        if duration_seconds(dyn.interval) == 0:
            c.error((*dp, "interval"), "must be longer than 0")
        if dyn.analysis is not None:
            check_analysis_ref(c, dyn.analysis, (*dp, "analysis"), ro, t)
    if ca.abort.mode == "gradual" and duration_seconds(ca.abort.interval) == 0:
        c.error((*p, "abort", "interval"), "must be longer than 0 for a gradual abort")
    if ca.abort.mode == "gradual" and ca.abort.step_weight == 0:
        c.error((*p, "abort", "stepWeight"), "must be at least 1 for a gradual abort")


def _shadow(c: Checker, sh: ShadowStrategy, p: FieldPath, ro: Rollout, t: Templates) -> None:
    routing = sh.traffic_routing
    check_router_fits_workload(c, routing, _workload(ro), p)
    if sh.compare is not None and not routing.can("mirrorCompare"):
        c.error(
            (*p, "compare"),
            cannot(routing.router, "compare mirrored responses (its proxy discards them)", "mirrorCompare")
            + "; judge the shadow with analysis instead",
        )
    if sh.compare is not None and not sh.compare.body and sh.compare.ignore_body_paths:
        c.warn((*p, "compare", "ignoreBodyPaths"), "has no effect with body: false")
    if not routing.can("mirror"):
        c.error(
            (*p, "trafficRouting"),
            cannot(routing.router, "mirror traffic", "mirror"),
        )
    if duration_seconds(sh.duration) == 0:
        c.error((*p, "duration"), "must be longer than 0: the shadow phase is how the new revision is observed")
    check_services(c, routing, sh.stable_service, sh.canary_service, p)
    _check_scale_down_delay(c, sh.scale_down_delay_seconds, (*p, "scaleDownDelaySeconds"))
    for i, path in enumerate((sh.compare.ignore_body_paths if sh.compare else None) or []):
        if not (path == "$" or path.startswith("$.") or path.startswith("$[")):
            c.error(
                (*p, "compare", "ignoreBodyPaths", i),
                f"must be a JSON path starting with '$.' (got {path!r})",
            )
    if sh.analysis is not None:
        check_analysis_ref(c, sh.analysis, (*p, "analysis"), ro, t)
    steps = sh.promotion.steps
    check_steps(c, routing, steps, (*p, "promotion", "steps"), allow_decreasing=False)
    for i, step in enumerate(steps or []):
        if step.analysis is not None:
            check_analysis_ref(c, step.analysis, (*p, "promotion", "steps", i, "analysis"), ro, t)


def _ab_test(c: Checker, ab: ABTestStrategy, p: FieldPath, ro: Rollout, t: Templates) -> None:
    routing = ab.traffic_routing
    check_router_fits_workload(c, routing, _workload(ro), p)
    _check_scale_down_delay(c, ab.scale_down_delay_seconds, (*p, "scaleDownDelaySeconds"))
    if ab.winner_by is not None:
        _check_winner_metric(c, ab, ro, (*p, "winnerBy", "metric"), t)
    roles = [v.role for v in ab.variants]
    if sorted(roles) != ["candidate", "control"]:
        c.error(
            (*p, "variants"),
            f"needs one variant with role control and one with role candidate (got {', '.join(roles)})",
        )
    names = [v.name for v in ab.variants]
    if len(set(names)) != len(names):
        c.error((*p, "variants", 1, "name"), f"variant names must be unique (both are {names[0]!r})")
    for i, v in enumerate(ab.variants):
        vp = (*p, "variants", i)
        check_matches(c, routing, v.match, (*vp, "match"))
        if v.role == "control" and v.match and not routing.can("matchToStable"):
            c.error(
                (*vp, "match"),
                cannot(
                    routing.router,
                    "send matched requests to the control (it sends them to the canary Service only); the "
                    "control already receives every request the candidate's rules do not take: remove this match",
                    "matchToStable",
                ),
            )
        if v.role == "control" and v.weight is not None:
            c.error(
                (*vp, "weight"),
                "the control receives every user not sent to the candidate; set weight on the candidate only",
            )
        if v.role == "candidate":
            if v.weight is None and not v.match:
                c.error(vp, "the candidate needs match rules, a weight, or both, or it would receive no traffic")
            if v.weight is not None and not routing.can("stickyWeight"):
                c.error(
                    (*vp, "weight"),
                    f"the {routing.router} router cannot keep a share of users on one variant (it splits per "
                    f"request); use match rules, or a router that can: {', '.join(routers_that_can('stickyWeight'))}",
                )
    if duration_seconds(ab.duration) == 0:
        c.error((*p, "duration"), "must be longer than 0")
    check_services(c, routing, ab.stable_service, ab.canary_service, p)
    if ab.analysis is not None:
        check_analysis_ref(c, ab.analysis, (*p, "analysis"), ro, t)


def _check_winner_metric(c: Checker, ab: ABTestStrategy, ro: Rollout, path: FieldPath, t: Templates) -> None:
    assert ab.winner_by is not None
    metric = ab.winner_by.metric
    builtin = list(BuiltinMetric.__args__)  # type: ignore[attr-defined]
    if metric in builtin:
        return
    known: list[str] = []
    for ref in ab.analysis.templates if ab.analysis else []:
        found = t.find(ref.template_name, ref.cluster_scope, ro.metadata.namespace)
        if found is None:
            return  # a template outside the linted files may define it
        known += [m.name for m in found.spec.metrics]
    if metric not in known:
        hint = difflib.get_close_matches(metric, [*builtin, *known], n=1)
        c.error(
            path,
            f"{metric!r} is neither a builtin metric ({', '.join(builtin)}) nor a metric of the referenced "
            f"analysis templates ({', '.join(known) or 'none referenced'})"
            + (f"; did you mean {hint[0]!r}?" if hint else ""),
        )
