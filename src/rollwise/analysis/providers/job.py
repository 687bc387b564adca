"""A check whose exit status is the verdict: exit 0 is Successful, any other exit Failed.
(On Kubernetes, `provider.job.spec` runs as a Job instead: kubernetes_job.py.)

The command is an argv list run without a shell, in its own process group so that a timeout
kills whatever it started too. A timeout, a missing program or death by a signal is an Error: the
check did not run to a verdict.

When the metric also has conditions, they judge what a successful command printed: `result` is its
standard output parsed as JSON (or the stripped text when it is not JSON).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Mapping

from rollwise.analysis.args import ArgumentError, redact, substitute
from rollwise.analysis.conditions import Result
from rollwise.analysis.providers.base import MeasureContext, errored, judged, measurement
from rollwise.spec.analysis import Measurement, Metric
from rollwise.spec.common import duration_seconds

_TAIL = 500

KUBERNETES_JOB_MISSING = (
    "a Kubernetes Job measurement (provider.job.spec) runs only on the Kubernetes platform; "
    "on the local platform give provider.job.command instead"
)


class JobMeasurer:
    async def measure(self, metric: Metric, args: Mapping[str, str], context: MeasureContext) -> Measurement:
        spec = metric.provider.job
        assert spec is not None
        if spec.command is None:
            if context.kubernetes_jobs is None:
                return errored(KUBERNETES_JOB_MISSING, context.clock(), context, args)
            from rollwise.analysis.providers.kubernetes_job import measure_with_job  # needs lightkube

            return await measure_with_job(context.kubernetes_jobs, metric, args, context)
        started = context.clock()
        try:
            argv = [
                substitute(a, args, where=f"metric {metric.name!r} command[{i}]") for i, a in enumerate(spec.command)
            ]
            env = dict(context.env)
            for key, value in (spec.env or {}).items():
                env[key] = substitute(value, args, where=f"metric {metric.name!r} env {key}")
        except ArgumentError as exc:
            return errored(str(exc), started, context, args)
        timeout = duration_seconds(spec.timeout)
        shown = " ".join(argv)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except FileNotFoundError:
            return errored(f"command not found: {argv[0]!r}", started, context, args)
        except PermissionError:
            return errored(f"command not executable: {argv[0]!r}", started, context, args)
        except OSError as exc:
            return errored(f"command {shown!r} could not start: {exc}", started, context, args)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            _kill_group(proc.pid)
            await proc.wait()
            return errored(
                f"command {shown!r} did not finish within {timeout:g}s and was killed", started, context, args
            )
        except asyncio.CancelledError:
            _kill_group(proc.pid)
            raise
        code = proc.returncode
        assert code is not None
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            return errored(f"command {shown!r} was killed by {name}{_tail(err)}", started, context, args)
        if code != 0:
            message = f"command {shown!r} exited with status {code}{_tail(err or out)}"
            return measurement("Failed", redact(message, args), started, context.clock())
        if metric.success_condition is None and metric.failure_condition is None:
            message = f"command {shown!r} exited with status 0"
            return measurement("Successful", redact(message, args), started, context.clock())
        return judged(metric, _output(out), started, context, args, note="from the command's output")


def _output(out: bytes) -> Result:
    text = out.decode("utf-8", errors="replace").strip()
    try:
        parsed: Result = json.loads(text)
    except ValueError:
        return text
    return parsed


def _tail(stream: bytes) -> str:
    text = stream.decode("utf-8", errors="replace").strip()
    if not text:
        return ""
    return "; output: " + (text if len(text) <= _TAIL else "..." + text[-_TAIL:])


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
