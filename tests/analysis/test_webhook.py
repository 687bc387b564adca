"""The webhook provider against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from rollwise.analysis.providers.webhook import WebhookMeasurer
from rollwise.spec.analysis import Measurement
from tests.analysis.helpers import context, metric, run
from tests.analysis.servers import json_reply, serve, silent_server
from tests.procs import free_port

REPLY = {"data": {"ok": True, "value": 0.995}, "items": [{"value": 3}, {"value": 7}]}


class Hook:
    """Routes of the test webhook; remembers what it was sent."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: dict[str, int] = {}
        self.received: list[tuple[str, dict[str, str], bytes]] = []

    def handle(self, req: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict[str, str], bytes]:
        path = req.path.split("?")[0]
        with self.lock:
            self.calls[path] = self.calls.get(path, 0) + 1
            calls = self.calls[path]
            self.received.append((path, dict(req.headers.items()), body))
        if path == "/ok":
            return json_reply(200, REPLY)
        if path == "/echo":
            return json_reply(200, {"method": req.command, "body": json.loads(body or b"null")})
        if path == "/flaky":  # fails twice, then answers
            return json_reply(503, {"error": "warming up"}) if calls <= 2 else json_reply(200, REPLY)
        if path == "/down":
            return json_reply(500, {"error": "broken"})
        if path == "/text":
            return 200, {"Content-Type": "text/plain"}, b"all good"
        if path == "/forbidden":
            return json_reply(403, {"error": "no"})
        if path == "/nan":
            return 200, {"Content-Type": "application/json"}, b'{"value": NaN}'
        if path == "/auth":
            if req.headers.get("Authorization") != "Bearer t0ken":
                return json_reply(401, {"error": "who are you"})
            return json_reply(200, {"ok": True})
        return json_reply(404, {"error": "no such route"})


@pytest.fixture(scope="module")
def hook() -> Iterator[tuple[Hook, str]]:
    h = Hook()
    with serve(h.handle) as port:
        yield h, f"http://127.0.0.1:{port}"


def measure(
    url: str,
    *,
    args: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    success: str | None = "result == true",
    failure: str | None = None,
    **webhook: Any,
) -> Measurement:
    fields: dict[str, Any] = {"name": "hook", "provider": {"webhook": {"url": url, **webhook}}}
    if success:
        fields["successCondition"] = success
    if failure:
        fields["failureCondition"] = failure
    return run(WebhookMeasurer(backoff=0).measure(metric(**fields), args or {}, context(env)))


def test_get_with_json_path(hook: tuple[Hook, str]) -> None:
    _, base = hook
    assert measure(f"{base}/ok", jsonPath="$.data.ok").phase == "Successful"
    m = measure(f"{base}/ok", jsonPath="$.items[1].value", success="result > 5")
    assert m.phase == "Successful" and m.value == "7"
    m = measure(f"{base}/ok", jsonPath="$.data.value", success="result >= 0.999")
    assert m.phase == "Failed" and m.value == "0.995"


def test_whole_reply_without_json_path(hook: tuple[Hook, str]) -> None:
    _, base = hook
    m = measure(f"{base}/ok", success="result.data.ok && result.items[0].value == 3")
    assert m.phase == "Successful", m.message


def test_wildcard_selects_a_list(hook: tuple[Hook, str]) -> None:
    _, base = hook
    m = measure(f"{base}/ok", jsonPath="$.items[*].value", success="result.all(v, v < 10)")
    assert m.phase == "Successful" and json.loads(m.value or "") == [3, 7]


def test_post_body_headers_and_args(hook: tuple[Hook, str]) -> None:
    h, base = hook
    m = measure(
        f"{base}/echo",
        method="POST",
        body='{"service": "{{args.svc}}"}',
        headers=[{"name": "X-Revision", "value": "{{args.rev}}"}],
        args={"svc": "web", "rev": "abc123"},
        jsonPath="$.body.service",
        success='result == "web"',
    )
    assert m.phase == "Successful", m.message
    path, headers, body = h.received[-1]
    assert path == "/echo" and json.loads(body) == {"service": "web"}
    assert headers["X-Revision"] == "abc123" and headers["Content-Type"] == "application/json"


def test_retries_until_the_server_recovers(hook: tuple[Hook, str]) -> None:
    h, base = hook
    m = measure(f"{base}/flaky", jsonPath="$.data.ok", retries=2)
    assert m.phase == "Successful", m.message
    assert h.calls["/flaky"] == 3


def test_gives_up_after_the_retries(hook: tuple[Hook, str]) -> None:
    h, base = hook
    before = h.calls.get("/down", 0)
    m = measure(f"{base}/down", retries=1)
    assert m.phase == "Error"
    assert "failed 2 times; last: HTTP 500" in (m.message or "")
    assert h.calls["/down"] - before == 2


def test_client_errors_are_not_retried(hook: tuple[Hook, str]) -> None:
    h, base = hook
    m = measure(f"{base}/forbidden", retries=3)
    assert m.phase == "Error" and "answered HTTP 403" in (m.message or "")
    assert h.calls["/forbidden"] == 1


def test_reply_that_is_not_json(hook: tuple[Hook, str]) -> None:
    _, base = hook
    m = measure(f"{base}/text")
    assert m.phase == "Error" and "not JSON: 'all good'" in (m.message or "")


def test_path_that_matches_nothing_is_an_error(hook: tuple[Hook, str]) -> None:
    _, base = hook
    m = measure(f"{base}/ok", jsonPath="$.data.missing")
    assert m.phase == "Error" and "has no $.data.missing" in (m.message or "")


def test_bad_json_path_is_an_error(hook: tuple[Hook, str]) -> None:
    _, base = hook
    m = measure(f"{base}/ok", jsonPath="data.ok")
    assert m.phase == "Error" and "must start with '$'" in (m.message or "")


def test_nan_is_inconclusive(hook: tuple[Hook, str]) -> None:
    _, base = hook
    m = measure(f"{base}/nan", jsonPath="$.value", success=None, failure="result > 0.05")
    assert m.phase == "Inconclusive" and "NaN" in (m.message or "")


def test_bearer_auth_from_env(hook: tuple[Hook, str]) -> None:
    _, base = hook
    auth = {"bearer": {"fromEnv": "HOOK_TOKEN"}}
    assert measure(f"{base}/auth", env={"HOOK_TOKEN": "t0ken"}, auth=auth, jsonPath="$.ok").phase == "Successful"
    denied = measure(f"{base}/auth", env={"HOOK_TOKEN": "wrong"}, auth=auth, jsonPath="$.ok")
    assert denied.phase == "Error" and "HTTP 401" in (denied.message or "")


def test_server_down_is_an_error() -> None:
    m = measure(f"http://127.0.0.1:{free_port()}/ok", retries=1)
    assert m.phase == "Error" and "failed 2 times; last: cannot connect" in (m.message or "")


def test_slow_server_times_out() -> None:
    with silent_server() as port:
        m = measure(f"http://127.0.0.1:{port}/ok", timeout="200ms", retries=0)
    assert m.phase == "Error" and "failed once; last: no answer within 0.2s" in (m.message or "")


def test_secret_args_are_redacted_from_messages(hook: tuple[Hook, str]) -> None:
    from rollwise.analysis.args import resolve_args
    from rollwise.spec.analysis import Argument, SecretSource

    _, base = hook
    args = resolve_args([Argument(name="key", value_from=SecretSource(from_env="API_KEY"))], env={"API_KEY": "hunter2"})
    m = run(
        WebhookMeasurer(backoff=0).measure(
            metric(name="hook", provider={"webhook": {"url": f"{base}/forbidden?key={{{{args.key}}}}"}}),
            args,
            context(),
        )
    )
    assert m.phase == "Error"
    assert "hunter2" not in (m.message or "") and "key=******" in (m.message or "")
