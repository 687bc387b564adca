"""Progressive flag rollouts on the local platform: the policy of `rollwise.flags.progressive`
carried out on a flag, with an analysis run measuring the rollout whose replicas read the flag.

Each rollout of a flag keeps its whole state in `<state dir>/flags/rollouts/<ns>/<flagset>/<flag>.json`
(the policy state, the flag as it was before, the analysis run's state), rewritten after every
change, so a restarted control plane continues it; a failed verdict puts the flag back as it was."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from rollwise.analysis.job_env import JobEnv
from rollwise.analysis.timestamps import parse_time, utc_now
from rollwise.analysis.waiting import wait_event
from rollwise.engine import AnalysisRunRequest
from rollwise.flags import document, progressive
from rollwise.flags.progressive import FINAL_PHASES, FlagRolloutSpec, FlagRolloutState, Phase, decide, start
from rollwise.platforms.local.daemon import flags_files
from rollwise.platforms.local.daemon.flags_service import FlagError, FlagService, Located
from rollwise.platforms.local.daemon.jobs import FINAL, FinishedJob, Job, TemplateJob
from rollwise.platforms.local.store import Store
from rollwise.spec.analysis import AnalysisTemplate, Verdict
from rollwise.spec.rollout import Rollout

log = logging.getLogger("rollwise.daemon.flags")

# How often a running flag rollout looks at its analysis between steps.
POLL_SECONDS = 0.5
ABORT_WAIT_SECONDS = 30.0


@dataclass
class Target:
    """What the analysis measures: the rollout whose replicas read the flag, and its revision."""

    rollout: str
    revision: str
    templates: list[str]


class FlagRollout:
    def __init__(
        self,
        at: Located,
        spec: FlagRolloutSpec,
        on: str,
        off: str,
        original: dict[str, Any],
        command: str,
        target: Target | None,
        state: FlagRolloutState,
    ) -> None:
        self.at = at
        self.spec = spec
        self.on, self.off = on, off
        self.original = original
        self.command = command
        self.target = target
        self.state = state
        self.steps = spec.steps()
        self.job: Job | None = None
        self.job_state: dict[str, Any] | None = None
        self.task: asyncio.Task[None] | None = None
        self.measuring: asyncio.Task[None] | None = None
        self.wakeup = asyncio.Event()
        # Set each time the loop has decided (and carried out) a step, and when it ends.
        self.decided = asyncio.Event()
        self.abort_requested = False

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.at.namespace, self.at.flagset, self.at.key)

    def view(self) -> dict[str, Any]:
        job = self.job
        return {
            "flag": self.at.key,
            "flagset": self.at.flagset,
            "phase": self.state.phase,
            "percent": self.state.percent,
            "targetPercent": self.spec.percent,
            "step": self.spec.step,
            "interval": self.spec.interval,
            "message": self.state.message,
            "variant": self.on,
            "command": self.command,
            "analysis": None
            if self.target is None
            else {
                "rollout": self.target.rollout,
                "revision": self.target.revision,
                "templates": self.target.templates,
                "phase": None if job is None else job.phase,
                "message": None if job is None else job.message,
                "metrics": [] if job is None else job.metrics(),
            },
        }

    def to_json(self) -> dict[str, Any]:
        st = self.state
        return {
            "namespace": self.at.namespace,
            "flagset": self.at.flagset,
            "flag": self.at.key,
            "spec": asdict(self.spec),
            "on": self.on,
            "off": self.off,
            "original": self.original,
            "command": self.command,
            "target": None if self.target is None else asdict(self.target),
            "state": {
                "phase": st.phase,
                "stepIndex": st.step_index,
                "stepStartedAt": st.step_started_at.isoformat(),
                "percent": st.percent,
                "message": st.message,
            },
            "job": None if self.job is None else self.job.state(),
        }


class FlagRollouts:
    def __init__(
        self,
        state_dir: Path,
        store: Store,
        service: FlagService,
        env_for: Callable[[str], JobEnv],
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.state_dir = state_dir
        self.store = store
        self.service = service
        self.env_for = env_for
        self.clock = clock
        self.runs: dict[tuple[str, str, str], FlagRollout] = {}

    # --- files ----------------------------------------------------------------------------------

    def _file(self, key: tuple[str, str, str]) -> Path:
        ns, fs, flag = key
        return flags_files.flags_dir(self.state_dir) / "rollouts" / ns / fs / f"{flag}.json"

    def _save(self, run: FlagRollout) -> None:
        try:
            flags_files.write(self._file(run.key), json.dumps(run.to_json(), indent=2) + "\n")
        except OSError as exc:
            log.warning("cannot save the rollout of flag %s: %s", run.at.key, exc)

    def resume_all(self) -> None:
        """Continue the rollouts an earlier control plane left unfinished; keep finished ones to show."""
        base = flags_files.flags_dir(self.state_dir) / "rollouts"
        for path in sorted(base.glob("*/*/*.json")):
            try:
                run = self._load(json.loads(path.read_text()))
            except (OSError, ValueError, KeyError, TypeError, FlagError) as exc:
                log.warning("cannot resume the flag rollout in %s: %s", path, exc)
                continue
            self.runs[run.key] = run
            if run.state.phase not in FINAL_PHASES:
                self._launch(run)

    def _load(self, d: dict[str, Any]) -> FlagRollout:
        at = self.service.locate(d["flag"], d["flagset"])
        st = d["state"]
        state = FlagRolloutState(
            st["phase"], int(st["stepIndex"]), parse_time(st["stepStartedAt"]), int(st["percent"]), st["message"]
        )
        target = None if d.get("target") is None else Target(**d["target"])
        run = FlagRollout(
            at, FlagRolloutSpec(**d["spec"]), d["on"], d["off"], d["original"], d["command"], target, state
        )
        job = d.get("job")
        if target is not None and isinstance(job, dict):
            if job.get("job") == "template" and state.phase not in FINAL_PHASES:
                run.job = TemplateJob.resume(self._request(run), job, self.env_for(target.rollout))
            else:
                run.job = FinishedJob(job.get("phase", "Error"), job.get("message") or "")
        return run

    # --- the API --------------------------------------------------------------------------------

    def get(self, key: str, flagset: str | None) -> FlagRollout:
        at = self.service.locate(key, flagset)
        run = self.runs.get((at.namespace, at.flagset, at.key))
        if run is None:
            raise FlagError(404, f"flag {key!r} has no progressive rollout")
        return run

    def begin(
        self,
        key: str,
        flagset: str | None,
        spec: FlagRolloutSpec,
        variant: str | None,
        templates: list[str],
        rollout: str | None,
        command: str,
    ) -> FlagRollout:
        at = self.service.locate(key, flagset)
        running = self.runs.get((at.namespace, at.flagset, at.key))
        if running is not None and running.state.phase not in FINAL_PHASES:
            raise FlagError(409, f"flag {key!r} is already being rolled out ({running.state.message})")
        flag = at.flag
        try:
            on = document.on_variant(flag, variant)
            off = document.off_variant(flag, on)
        except document.FlagChangeError as exc:
            raise FlagError(400, f"{key}: {exc}") from None
        enabled = flag.get("state", "ENABLED") == "ENABLED"
        if enabled and not flag.get("targeting") and flag.get("defaultVariant") == on:
            raise FlagError(409, f"flag {key!r} already serves {on!r} to everyone")
        # A split this command wrote before continues from its share; anything else starts at 0.
        current = 0
        if enabled and document.percent_of(flag) is not None and flag["targeting"]["fractional"][0][0] == on:
            current = document.percent_of(flag) or 0
        spec = replace(spec, start=current)
        try:
            spec.validate()
        except ValueError as exc:
            raise FlagError(400, str(exc)) from None
        target = self._target(at, templates, rollout) if templates else None
        run = FlagRollout(at, spec, on, off, flag, command, target, start(self.clock(), current))
        if target is not None:
            run.job = self._job(run)
        self.runs[run.key] = run
        self._save(run)
        self._launch(run)
        return run

    async def abort(self, key: str, flagset: str | None) -> FlagRollout:
        """Stop the rollout and revert the flag; answers once the flag is back."""
        run = self.get(key, flagset)
        if run.state.phase in FINAL_PHASES:
            raise FlagError(409, f"the rollout of flag {key!r} is already over ({run.state.phase})")
        run.abort_requested = True
        run.wakeup.set()
        if run.task is not None:
            await asyncio.wait({run.task}, timeout=ABORT_WAIT_SECONDS)
        return run

    async def resume(self, key: str, flagset: str | None) -> FlagRollout:
        """Go on from a pause (an inconclusive verdict, or an error), with a fresh analysis."""
        run = self.get(key, flagset)
        try:
            state = progressive.resume(run.state, self.clock())
        except progressive.FlagRolloutError as exc:
            raise FlagError(409, f"flag {key!r}: {exc}") from None
        await self._continue(run, state, fresh_analysis=True)
        return run

    async def promote(self, key: str, flagset: str | None) -> FlagRollout:
        """Skip to the next step now. From a pause the analysis starts afresh (the inconclusive
        verdict would pause it again); a running analysis goes on watching."""
        run = self.get(key, flagset)
        try:
            state = progressive.promote(run.steps, run.state, self.clock())
        except progressive.FlagRolloutError as exc:
            raise FlagError(409, f"flag {key!r}: {exc}") from None
        await self._continue(run, state, fresh_analysis=run.state.phase == "Paused")
        return run

    async def _continue(self, run: FlagRollout, state: FlagRolloutState, fresh_analysis: bool) -> None:
        old_job, old_task = run.job, run.measuring
        if fresh_analysis and run.target is not None:
            # Swapped in before the old run is stopped: the loop must never judge by a stopped run.
            run.job, run.measuring = self._job(run), None
        run.state = state
        self._save(run)
        run.decided.clear()
        if run.task is None or run.task.done():
            self._launch(run)  # the loop ended (stopped by an error): start it again
        else:
            self._measure(run)
            run.wakeup.set()
        if run.job is not old_job:
            await self._stop_measuring(old_job, old_task, "replaced by a new analysis")
        # Answer with the step the loop has carried out (promote changes the share at once).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.decided.wait(), ABORT_WAIT_SECONDS)

    async def shutdown(self) -> None:
        for run in self.runs.values():
            if run.task is not None:
                run.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await run.task

    # --- analysis -------------------------------------------------------------------------------

    def _target(self, at: Located, templates: list[str], rollout: str | None) -> Target:
        for name in templates:
            if self.store.get_resource("AnalysisTemplate", at.namespace, name) is None:
                raise FlagError(404, f"AnalysisTemplate {name!r} is not applied")
        readers = []
        for record in self.store.list_rollouts():
            ref = ((record.spec.get("spec") or {}).get("featureFlags") or {}).get("flagSet")
            if ref == at.flagset:
                readers.append(record)
        if rollout is not None:
            readers = [r for r in readers if r.name == rollout]
            if not readers:
                raise FlagError(404, f"rollout {rollout!r} does not read FlagSet {at.flagset!r} (spec.featureFlags)")
        if not readers:
            raise FlagError(409, f"no rollout reads FlagSet {at.flagset!r}: nothing for the analysis to measure")
        if len(readers) > 1:
            names = ", ".join(sorted(r.name for r in readers))
            raise FlagError(409, f"several rollouts read FlagSet {at.flagset!r} ({names}); name one with --rollout")
        status = Rollout.model_validate({**readers[0].spec, "status": readers[0].status or None}).status
        revision = None if status is None else (status.stable_revision or status.current_revision)
        if not revision:
            raise FlagError(409, f"rollout {readers[0].name!r} has no revision running yet")
        return Target(readers[0].name, revision, templates)

    def _request(self, run: FlagRollout) -> AnalysisRunRequest:
        assert run.target is not None
        return AnalysisRunRequest(
            name=f"flag-{run.at.flagset}-{run.at.key}",
            kind="background",
            step=None,
            revision=run.target.revision,
            stable_revision=None,
            templates=tuple((t, False) for t in run.target.templates),
            args=(),
        )

    def _job(self, run: FlagRollout) -> Job:
        assert run.target is not None
        metrics, declared = [], []
        for name in run.target.templates:
            record = self.store.get_resource("AnalysisTemplate", run.at.namespace, name)
            if record is None:
                return FinishedJob("Error", f"AnalysisTemplate {name!r} is not applied")
            spec = AnalysisTemplate.model_validate(record.document).spec
            metrics += spec.metrics
            declared += spec.args or []
        env = self.env_for(run.target.rollout)
        try:
            return TemplateJob(self._request(run), metrics, declared, env, started_at=env.clock())
        except ValueError as exc:
            return FinishedJob("Error", str(exc))

    # --- the loop -------------------------------------------------------------------------------

    def _launch(self, run: FlagRollout) -> None:
        run.task = asyncio.create_task(self._run(run), name=f"rollwise-flag-{run.at.key}")

    def _measure(self, run: FlagRollout) -> None:
        job = run.job
        if job is not None and job.phase not in FINAL and run.measuring is None:
            run.measuring = asyncio.create_task(job.run(lambda _: run.wakeup.set()))

    async def _stop_measuring(self, job: Job | None, task: asyncio.Task[None] | None, reason: str) -> None:
        if job is not None and job.phase not in FINAL:
            job.terminate(reason)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, run: FlagRollout) -> None:
        self._measure(run)
        try:
            while True:
                run.wakeup.clear()
                if run.abort_requested:
                    self._revert(run, "Aborted", "aborted by the user: flag reverted")
                    break
                job = run.job
                verdict: Verdict | None = None
                if job is not None and job.phase in FINAL:
                    verdict = job.phase
                decision = decide(run.steps, run.state, self.clock(), verdict)
                if decision.revert:
                    reason = decision.state.message
                    if job is not None and job.message:
                        reason += f" ({job.message})"
                    self._revert(run, "Reverted", reason)
                    break
                if decision.state.percent != run.state.percent:
                    self._set_percent(run, decision.state.percent)
                run.state = decision.state
                self._save(run)
                run.decided.set()
                if run.state.phase in FINAL_PHASES:
                    break
                delay = POLL_SECONDS
                if decision.wake_at is not None:
                    delay = min(delay, max(0.0, (decision.wake_at - self.clock()).total_seconds()))
                await wait_event(run.wakeup, delay)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the flag must not be left half way without anyone knowing
            log.exception("the rollout of flag %s failed", run.at.key)
            run.state = FlagRolloutState(
                "Paused",
                run.state.step_index,
                run.state.step_started_at,
                run.state.percent,
                f"stopped by an error: {type(exc).__name__}: {exc}",
            )
            self._save(run)
        finally:
            run.decided.set()
            job, measuring = run.job, run.measuring
            run.measuring = None
            await self._stop_measuring(job, measuring, "the flag rollout is over")

    def _set_percent(self, run: FlagRollout, percent: int) -> None:
        self.service.change(
            run.at,
            lambda flag: document.set_percent(flag, percent, run.on, run.off),
            f"{run.command} (step: {percent}%)",
        )

    def _revert(self, run: FlagRollout, phase: str, message: str) -> None:
        original = run.original
        self.service.change(run.at, lambda _: original, f"{run.command} ({message})")
        st = run.state
        percent = document.percent_of(original) or 0
        run.state = FlagRolloutState(cast(Phase, phase), st.step_index, st.step_started_at, percent, message)
        self._save(run)
