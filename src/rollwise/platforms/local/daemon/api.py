"""The control plane's HTTP API (docs/local-api.md): routes, the bearer token, and handlers that
turn requests into store reads, applies, commands and reconciles."""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml

from rollwise import __version__
from rollwise.engine import Command
from rollwise.platforms.hints import unchanged_hint
from rollwise.platforms.local.daemon import apply, logs, metrics, views
from rollwise.platforms.local.daemon.controller import Controller, load_rollout
from rollwise.platforms.local.daemon.flags_api import FlagsApi
from rollwise.platforms.local.daemon.flags_rollout import FlagRollouts
from rollwise.platforms.local.daemon.flags_service import FlagService
from rollwise.platforms.local.daemon.http_server import Request, Response
from rollwise.platforms.local.daemon.proxies import ProxyError
from rollwise.platforms.local.store import RolloutRecord

COMMANDS = ("promote", "abort", "retry", "pause", "resume", "undo")
_ROLLOUT = re.compile(r"^/v1/rollouts/([^/]+)(?:/([a-z]+))?$")
ShutdownHook = Callable[[bool], Awaitable[None]]


class Api:
    def __init__(self, state_dir: Path, token: str, controller: Controller, shutdown: ShutdownHook) -> None:
        self.state_dir = state_dir
        self.controller = controller
        self.store = controller.store
        self.shutdown = shutdown
        self._expected = f"Bearer {token}".encode()
        self.flag_service = FlagService(state_dir, self.store)
        self.flag_service.sync()
        rollouts = FlagRollouts(state_dir, self.store, self.flag_service, controller._job_env, controller.clock)
        rollouts.resume_all()
        self.flags = FlagsApi(self.flag_service, rollouts)

    async def handle(self, req: Request) -> Response:
        if req.path == "/metrics":
            if req.method != "GET":
                return Response.error(405, "use GET")
            return Response.text(200, await self._metrics(), "text/plain; version=0.0.4; charset=utf-8")
        if not req.path.startswith("/v1/"):
            return Response.error(404, f"no such path: {req.path}")
        given = req.headers.get("authorization", "").encode("latin-1")
        if not hmac.compare_digest(given, self._expected):
            return Response.error(401, "missing or wrong bearer token: send the contents of <dir>/token")
        try:
            return await self._route(req)
        except ValueError as exc:  # malformed JSON bodies and parameters
            return Response.error(400, str(exc))

    async def _route(self, req: Request) -> Response:
        path, method = req.path, req.method
        if path == "/v1/healthz":
            return Response.json(200, {"ok": True, "version": __version__})
        if path == "/v1/apply":
            return await self._apply(req) if method == "POST" else Response.error(405, "use POST")
        if path == "/v1/rollouts":
            return self._list() if method == "GET" else Response.error(405, "use GET")
        if path == "/v1/shutdown":
            return await self._shutdown(req) if method == "POST" else Response.error(405, "use POST")
        if self.flags.handles(path):
            return await self.flags.route(req, _object(req) if method == "POST" else {})
        m = _ROLLOUT.match(path)
        if m is None:
            return Response.error(404, f"no such path: {path}")
        name, sub = m.group(1), m.group(2)
        record = self.store.get_rollout(name)
        if record is None:
            return Response.error(404, f"rollout {name!r} not found")
        handlers: dict[tuple[str | None, str], Callable[[Request, RolloutRecord], Awaitable[Response]]] = {
            (None, "GET"): self._details,
            (None, "DELETE"): self._delete,
            ("commands", "POST"): self._command,
            ("set", "POST"): self._set,
            ("history", "GET"): self._history,
            ("events", "GET"): self._events,
            ("logs", "GET"): self._logs,
        }
        handler = handlers.get((sub, method))
        if handler is None:
            known = {s for s, _ in handlers}
            return Response.error(405 if sub in known else 404, f"{method} {path} is not supported")
        return await handler(req, record)

    # --- apply and set -----------------------------------------------------------------------------

    async def _apply(self, req: Request) -> Response:
        body = _object(req)
        usage = 'the body must be {"yaml": "<text>", "file": "<name>"} or {"files": [such objects]}'
        batch = body.get("files") if "files" in body else [body]
        if not isinstance(batch, list) or not batch:
            return Response.error(400, usage)
        files: list[tuple[str, str]] = []
        for entry in batch:
            text = entry.get("yaml") if isinstance(entry, dict) else None
            file = (entry.get("file") if isinstance(entry, dict) else None) or "(request)"
            if not isinstance(text, str) or not isinstance(file, str):
                return Response.error(400, usage)
            files.append((text, file))
        if len({file for _, file in files}) != len(files):
            return Response.error(400, "each file may appear once in a batch")
        return await self._store(files)

    async def _store(self, files: list[tuple[str, str]]) -> Response:
        result = apply.apply_files(self.store, files)
        warnings = [str(p) for p in result.warnings]
        if result.errors:
            n = len(result.errors)
            order = {file: i for i, (_, file) in enumerate(files)}
            where = ", ".join(sorted({p.file for p in result.errors}, key=lambda f: (order.get(f, len(order)), f)))
            return Response.error(
                422,
                f"{n} problem{'s' if n != 1 else ''} in {where}; nothing was applied",
                problems=[str(p) for p in result.errors],
                warnings=warnings,
            )
        for item in result.applied:
            if item.kind == "FlagSet":
                self.flag_service.applied(item.namespace, item.name, f"apply {item.file}")
            if item.kind == "Rollout":
                if item.changed:
                    self.controller.event(
                        item.name, "Normal", "Applied", f"generation {item.generation} from {item.file}"
                    )
                elif (record := self.store.get_rollout(item.name)) is not None:
                    hint = unchanged_hint(item.name, load_rollout(record).status)
                    if hint is not None:
                        warnings.append(hint)
                # Reconciled before answering, so that a `get` right after shows the new plan.
                await self.controller.reconcile_now(item.name)
        return Response.json(200, {"applied": [a.to_json() for a in result.applied], "warnings": warnings})

    async def _set(self, req: Request, record: RolloutRecord) -> Response:
        body = _object(req)
        command, env = body.get("command"), body.get("env")
        if command is None and env is None:
            return Response.error(400, 'give "command" (a list of strings), "env" (a mapping), or both')
        doc = record.spec
        process = (doc.get("spec") or {}).get("process")
        if not isinstance(process, dict):
            return Response.error(409, f"rollout {record.name!r} has no process template to change")
        if command is not None:
            if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
                return Response.error(400, '"command" must be a non-empty list of strings')
            process["command"] = command
        if env is not None:
            if not isinstance(env, dict) or not all(isinstance(v, str | None) for v in env.values()):
                return Response.error(400, '"env" must map names to strings (null removes a variable)')
            merged = dict(process.get("env") or {})
            for key, value in env.items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[str(key)] = value
            process["env"] = merged
        return await self._store([(yaml.safe_dump(doc, sort_keys=False), f"(set {record.name})")])

    # --- reading -----------------------------------------------------------------------------------

    def _list(self) -> Response:
        items = [views.summary(load_rollout(r)) for r in self.store.list_rollouts()]
        return Response.json(200, {"items": items})

    async def _details(self, req: Request, record: RolloutRecord) -> Response:
        rollout = load_rollout(record)
        carrier_views = {
            rev: vs for (ro, rev), vs in self.controller.supervisor.snapshot().items() if ro == record.name
        }
        status = rollout.status
        return Response.json(
            200,
            {
                "summary": views.summary(rollout),
                "spec": record.spec.get("spec"),
                "status": None if status is None else status.model_dump(by_alias=True, exclude_none=True, mode="json"),
                "replicas": views.replicas(carrier_views),
                "analysis": self.controller.runner.describe(record.name),
                "events": [views.event(e) for e in self.store.events(record.name, limit=20)],
            },
        )

    async def _history(self, req: Request, record: RolloutRecord) -> Response:
        status = load_rollout(record).status
        items = views.history(status, self.store.revisions(record.name)) if status else []
        return Response.json(200, {"items": items})

    async def _events(self, req: Request, record: RolloutRecord) -> Response:
        after = _int(req.query.get("after"), "after")
        limit = _int(req.query.get("limit"), "limit") or 100
        events = self.store.events(record.name, limit, after=after)
        return Response.json(200, {"items": [views.event(e) for e in events]})

    async def _logs(self, req: Request, record: RolloutRecord) -> Response:
        status = load_rollout(record).status
        revision = req.query.get("revision") or (status.current_revision if status else None)
        if not revision:
            return Response.error(404, f"rollout {record.name!r} has no revision yet")
        replica = _int(req.query.get("replica"), "replica")
        lines = _int(req.query.get("tail"), "tail") or 100
        if not logs.replica_logs(self.state_dir, record.name, revision, replica):
            which = f"replica {replica} of revision {revision}" if replica is not None else f"revision {revision}"
            return Response.error(404, f"no logs for {which} of rollout {record.name!r}")
        return Response.text(200, logs.render(self.state_dir, record.name, revision, replica, lines))

    async def _metrics(self) -> str:
        statuses = {r.name: load_rollout(r).status for r in self.store.list_rollouts()}
        lines = metrics.rollout_metrics(statuses)
        texts = []
        for name in sorted(statuses):
            for proc in self.controller.proxies.of(name):
                try:
                    texts.append((name, proc.listener, await self.controller.proxies.metrics(proc)))
                except ProxyError:
                    continue
        return metrics.render(lines + metrics.merge_proxy_metrics(texts))

    # --- changing ----------------------------------------------------------------------------------

    async def _command(self, req: Request, record: RolloutRecord) -> Response:
        body = _object(req)
        verb = body.get("command")
        if verb not in COMMANDS:
            return Response.error(400, f'"command" must be one of {", ".join(COMMANDS)}')
        to_revision = body.get("toRevision")
        if to_revision is not None and (not isinstance(to_revision, int) or isinstance(to_revision, bool)):
            return Response.error(400, '"toRevision" must be an integer')
        if to_revision is not None and verb != "undo":
            return Response.error(400, '"toRevision" goes with undo only')
        full = body.get("full") is True
        if full and verb != "promote":
            return Response.error(400, '"full" goes with promote only')
        command = Command("promoteFull" if full else verb, to_revision=to_revision)
        result = await self.controller.command(record.name, command)
        if result is None:
            return Response.error(500, f"the command could not be carried out; see rollwise status {record.name}")
        if not result.accepted:
            return Response.error(409, result.message)
        return Response.json(200, {"accepted": True, "message": result.message})

    async def _delete(self, req: Request, record: RolloutRecord) -> Response:
        await self.controller.delete(record.name)
        return Response.json(200, {"deleted": True})

    async def _shutdown(self, req: Request) -> Response:
        body = _object(req)
        stop = body.get("stopProcesses", True)
        if not isinstance(stop, bool):
            return Response.error(400, '"stopProcesses" must be true or false')
        await self.shutdown(stop)
        return Response.json(200, {"ok": True})


def _object(req: Request) -> dict[str, Any]:
    try:
        body = req.json()
    except ValueError as exc:
        raise ValueError(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def _int(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be an integer (got {value!r})") from None
