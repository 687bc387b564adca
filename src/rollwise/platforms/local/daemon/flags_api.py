"""The feature-flag part of the control plane's API (docs/local-api.md, "Feature flags"):

GET    /v1/flags[?flagset=]                  every flag of the applied FlagSets
GET    /v1/flags/<flag>[?flagset=]           one flag, its definition and its file
POST   /v1/flags/<flag>                      {"action": "enable"|"disable"|"set", "variant", "flagset", "command"}
POST   /v1/flags/<flag>/rollout              {"percent", "step", "interval", "variant", "analysis", "rollout", ...}
GET    /v1/flags/<flag>/rollout[?flagset=]   the progressive rollout's state
DELETE /v1/flags/<flag>/rollout[?flagset=]   abort it (the flag goes back as it was)
POST   /v1/flags/<flag>/rollout/resume       go on from a pause, with a fresh analysis  {"flagset"}
POST   /v1/flags/<flag>/rollout/promote      skip to the next step now                  {"flagset"}
GET    /v1/flag-history[?flagset=&flag=&limit=]"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from rollwise.flags import document
from rollwise.flags.progressive import FlagRolloutSpec
from rollwise.platforms.local.daemon.flags_rollout import FlagRollouts
from rollwise.platforms.local.daemon.flags_service import FlagError, FlagService
from rollwise.platforms.local.daemon.http_server import Request, Response
from rollwise.platforms.local.store import FlagChange

_FLAG = re.compile(r"^/v1/flags/([^/]+)(?:/(rollout(?:/resume|/promote)?))?$")


class FlagsApi:
    def __init__(self, service: FlagService, rollouts: FlagRollouts) -> None:
        self.service = service
        self.rollouts = rollouts

    def handles(self, path: str) -> bool:
        return path == "/v1/flags" or path.startswith("/v1/flags/") or path == "/v1/flag-history"

    async def route(self, req: Request, body: dict[str, Any]) -> Response:
        try:
            return await self._route(req, body)
        except FlagError as exc:
            extra = {"problems": exc.problems} if exc.problems else {}
            return Response.error(exc.status, str(exc), **extra)

    async def _route(self, req: Request, body: dict[str, Any]) -> Response:
        path, method, q = req.path, req.method, req.query
        if path == "/v1/flags":
            if method != "GET":
                return Response.error(405, "use GET")
            return Response.json(200, {"items": self.service.flags(q.get("flagset") or None)})
        if path == "/v1/flag-history":
            if method != "GET":
                return Response.error(405, "use GET")
            limit = int(q["limit"]) if q.get("limit") else 100
            items = self.service.history(q.get("flagset") or None, q.get("flag") or None, limit)
            return Response.json(200, {"items": [_change(c) for c in items]})
        m = _FLAG.match(path)
        if m is None:
            return Response.error(404, f"no such path: {path}")
        key, sub = unquote(m.group(1)), m.group(2)
        flagset = _text(body.get("flagset")) or q.get("flagset") or None
        if sub is None and method == "GET":
            return Response.json(200, self.service.details(key, flagset))
        if sub is None and method == "POST":
            return self._change(key, flagset, body)
        if sub == "rollout" and method == "GET":
            return Response.json(200, self.rollouts.get(key, flagset).view())
        if sub == "rollout" and method == "POST":
            return self._rollout(key, flagset, body)
        if sub == "rollout" and method == "DELETE":
            return Response.json(200, (await self.rollouts.abort(key, flagset)).view())
        if sub == "rollout/resume" and method == "POST":
            return Response.json(200, (await self.rollouts.resume(key, flagset)).view())
        if sub == "rollout/promote" and method == "POST":
            return Response.json(200, (await self.rollouts.promote(key, flagset)).view())
        return Response.error(405, f"{method} {path} is not supported")

    def _change(self, key: str, flagset: str | None, body: dict[str, Any]) -> Response:
        action = body.get("action")
        command = _text(body.get("command")) or f"flags {action} {key}"
        at = self.service.locate(key, flagset)
        running = self.rollouts.runs.get((at.namespace, at.flagset, at.key))
        if running is not None and running.state.phase in ("Progressing", "Paused"):
            raise FlagError(
                409, f"flag {key!r} is being rolled out; abort that first (rollwise flags rollout {key} --abort)"
            )
        if action == "enable":
            old, new = self.service.change(at, document.enable, command)
        elif action == "disable":
            old, new = self.service.change(at, document.disable, command)
        elif action == "set":
            variant = body.get("variant")
            if not isinstance(variant, str):
                return Response.error(400, '"set" needs "variant" (a variant name)')
            old, new = self.service.change(at, lambda f: document.set_variant(f, variant), command)
        else:
            return Response.error(400, '"action" must be enable, disable or set')
        return Response.json(
            200,
            {
                "flag": key,
                "flagset": at.flagset,
                "changed": old != new,
                "old": old,
                "new": new,
                "file": str(self.service.file_of(at.namespace, at.flagset)),
            },
        )

    def _rollout(self, key: str, flagset: str | None, body: dict[str, Any]) -> Response:
        percent, step = body.get("percent"), body.get("step")
        if not isinstance(percent, int) or not _is_int(percent) or (step is not None and not _is_int(step)):
            return Response.error(400, '"percent" (and "step", if given) must be integers')
        interval = body.get("interval", "1m")
        if not isinstance(interval, str | int) or isinstance(interval, bool):
            return Response.error(400, '"interval" must be a duration like "30s"')
        analysis = body.get("analysis") or []
        if not isinstance(analysis, list) or not all(isinstance(a, str) for a in analysis):
            return Response.error(400, '"analysis" must be a list of AnalysisTemplate names')
        command = _text(body.get("command")) or f"flags rollout {key} --percent {percent}"
        run = self.rollouts.begin(
            key,
            flagset,
            FlagRolloutSpec(percent=percent, step=step, interval=interval),
            _text(body.get("variant")),
            analysis,
            _text(body.get("rollout")),
            command,
        )
        return Response.json(200, run.view())


def _change(c: FlagChange) -> dict[str, Any]:
    return {
        "id": c.id,
        "time": c.ts.isoformat().replace("+00:00", "Z"),
        "flagset": c.flagset,
        "flag": c.flag,
        "old": c.old,
        "new": c.new,
        "command": c.command,
    }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
