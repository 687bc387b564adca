"""Talk to the local control plane of a state directory: find it from `<dir>/daemon.json`,
authenticate with `<dir>/token`, and turn every failure into one line a person can act on."""

from __future__ import annotations

import http.client
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from rollwise.cli.errors import CliError
from rollwise.platforms.local.daemon.layout import daemon_file
from rollwise.platforms.local.store import StateDirError, read_token


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return {"error": self.body.decode(errors="replace").strip()}

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def not_running(state_dir: Path) -> CliError:
    return CliError(f"no control plane running in {state_dir} (start one with `rollwise up`)")


def daemon_info(state_dir: Path) -> dict[str, Any] | None:
    """What daemon.json says, if its process is alive."""
    try:
        info = json.loads(daemon_file(state_dir).read_text())
        pid = int(info["pid"])
        urlsplit(str(info["api"])).port  # noqa: B018 (a malformed address fails here)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return dict(info)


class Client:
    def __init__(self, state_dir: Path, timeout: float = 120.0) -> None:
        self.state_dir = state_dir
        info = daemon_info(state_dir)
        if info is None:
            raise not_running(state_dir)
        address = urlsplit(str(info["api"]))
        self.host = address.hostname or "127.0.0.1"
        self.port = address.port or 80
        self.pid = int(info["pid"])
        self.api = str(info["api"])
        try:
            self.token = read_token(state_dir)
        except StateDirError as exc:
            raise CliError(str(exc)) from None
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Answer:
        if query:
            path += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        headers = {"Authorization": f"Bearer {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            return Answer(resp.status, resp.read(), resp.getheader("content-type") or "")
        except ConnectionRefusedError:
            raise not_running(self.state_dir) from None
        except TimeoutError:
            raise CliError(f"the control plane in {self.state_dir} did not answer within {self.timeout:g}s") from None
        except OSError as exc:
            raise CliError(f"cannot reach the control plane at {self.api}: {exc.strerror or exc}") from None
        finally:
            conn.close()

    def call(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        """The JSON answer of a successful request; an error answer becomes a CliError."""
        answer = self.request(method, path, body, query)
        if answer.status >= 400:
            raise error_of(answer)
        return answer.json()


def error_of(answer: Answer) -> CliError:
    doc = answer.json()
    message = str(doc.get("error") or f"the control plane answered {answer.status}") if isinstance(doc, dict) else ""
    problems = [str(p) for p in doc.get("problems") or []] if isinstance(doc, dict) else []
    return CliError(message or f"the control plane answered {answer.status}", problems)


def rollout_path(name: str, sub: str = "") -> str:
    return f"/v1/rollouts/{quote(name, safe='')}" + (f"/{sub}" if sub else "")
