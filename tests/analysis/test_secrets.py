"""secretKeyRef credentials: the local platform's Secret files, and bearer/basic auth from them
against a real Prometheus that demands basic auth (its --web.config.file), a real authenticating
proxy in front of Prometheus, and a real webhook server."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from rollwise.analysis.args import resolve_args
from rollwise.analysis.providers.prometheus import PrometheusMeasurer
from rollwise.analysis.providers.webhook import WebhookMeasurer
from rollwise.analysis.secrets import SecretDirectory, SecretError, secret_refs
from rollwise.spec.analysis import Argument, Measurement, SecretKeyRef
from tests.analysis.helpers import context, metric, run
from tests.analysis.prometheus_process import run_prometheus
from tests.analysis.servers import RunningPrometheus, auth_proxy, json_reply, serve

USER, PASSWORD = "reader", "correct horse"


def write_secret(root: Path, name: str, **keys: str) -> None:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for key, value in keys.items():
        (folder / key).write_text(value)


@pytest.fixture
def secrets(tmp_path: Path) -> SecretDirectory:
    return SecretDirectory.of_state_dir(tmp_path / "state")


@pytest.fixture(scope="module")
def locked_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prometheus whose every endpoint demands basic auth."""
    with run_prometheus(tmp_path_factory.mktemp("locked-prometheus"), [], users={USER: PASSWORD}) as address:
        yield address


def ref(name: str, key: str) -> dict[str, Any]:
    return {"secretKeyRef": {"name": name, "key": key}}


def basic(name: str = "prometheus") -> dict[str, Any]:
    return {"basic": {"username": ref(name, "username"), "password": ref(name, "password")}}


def measure_prometheus(address: str, secrets: SecretDirectory, auth: dict[str, Any] | None) -> Measurement:
    provider: dict[str, Any] = {"address": address, "query": "vector(1)"}
    if auth is not None:
        provider["auth"] = auth
    m = metric(name="q", provider={"prometheus": provider}, successCondition="result == 1")
    return run(PrometheusMeasurer().measure(m, {}, context(secrets=secrets)))


# --- the local platform's Secret files -------------------------------------------------------------


def test_secret_files_are_read_with_one_trailing_newline_dropped(secrets: SecretDirectory) -> None:
    write_secret(secrets.root, "prometheus", username="reader\n", password="pw\n\n", token="t0k")
    assert secrets.read(SecretKeyRef(name="prometheus", key="username")) == "reader"
    assert secrets.read(SecretKeyRef(name="prometheus", key="password")) == "pw\n"
    assert secrets.read(SecretKeyRef(name="prometheus", key="token")) == "t0k"


def test_a_missing_secret_or_key_is_named_with_where_it_was_looked_for(secrets: SecretDirectory) -> None:
    with pytest.raises(SecretError) as missing:
        secrets.read(SecretKeyRef(name="prometheus", key="password"))
    assert str(missing.value) == (
        f"Secret 'prometheus' not found: no directory {secrets.root / 'prometheus'} "
        f"(the local platform reads key 'password' of it from {secrets.root / 'prometheus' / 'password'})"
    )
    write_secret(secrets.root, "prometheus", username="reader", token="x")
    with pytest.raises(SecretError) as no_key:
        secrets.read(SecretKeyRef(name="prometheus", key="password"))
    assert str(no_key.value) == (
        f"Secret 'prometheus' has no key 'password': no file {secrets.root / 'prometheus' / 'password'} "
        "(keys: token, username)"
    )


def test_a_reference_cannot_leave_the_secrets_directory(secrets: SecretDirectory, tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "token").write_text("the control plane's token")
    for name, key in (("..", "token"), ("prometheus", "../token"), ("Prometheus", "x"), ("a", "..")):
        with pytest.raises(SecretError, match="is not a valid"):
            secrets.read(SecretKeyRef(name=name, key=key))


def test_argument_from_a_secret_is_resolved_and_redacted(secrets: SecretDirectory) -> None:
    write_secret(secrets.root, "api", token="s3cret")
    declared = [Argument.model_validate({"name": "token", "valueFrom": ref("api", "token")})]
    args = resolve_args(declared, env={}, secrets=secrets)
    assert args["token"] == "s3cret"
    assert "s3cret" not in repr(args)


def test_secret_refs_lists_each_reference_once() -> None:
    metrics = [
        metric(name="a", provider={"prometheus": {"address": "http://x", "query": "up", "auth": basic()}}),
        metric(name="b", provider={"webhook": {"url": "http://x", "auth": {"bearer": ref("api", "token")}}}),
        metric(name="c", provider={"prometheus": {"address": "http://x", "query": "up", "auth": basic()}}),
    ]
    declared = [Argument.model_validate({"name": "t", "valueFrom": ref("api", "token")})]
    assert [(r.name, r.key) for r in secret_refs(metrics, declared)] == [
        ("api", "token"),
        ("prometheus", "username"),
        ("prometheus", "password"),
    ]


# --- against a real Prometheus with basic auth ---------------------------------------------------


def test_basic_auth_from_a_secret_against_prometheus(locked_prometheus: str, secrets: SecretDirectory) -> None:
    write_secret(secrets.root, "prometheus", username=USER, password=PASSWORD + "\n")
    m = measure_prometheus(locked_prometheus, secrets, basic())
    assert m.phase == "Successful", m.message
    assert m.value == "1.0"


def test_wrong_password_is_an_error_saying_so(locked_prometheus: str, secrets: SecretDirectory) -> None:
    write_secret(secrets.root, "prometheus", username=USER, password="wrong")
    m = measure_prometheus(locked_prometheus, secrets, basic())
    assert m.phase == "Error"
    assert m.message == f"Prometheus at {locked_prometheus} refused the credentials (HTTP 401)"
    assert "wrong" not in (m.message or "")


def test_no_credentials_is_an_error_saying_so(locked_prometheus: str, secrets: SecretDirectory) -> None:
    m = measure_prometheus(locked_prometheus, secrets, None)
    assert m.phase == "Error"
    assert "refused the credentials (HTTP 401)" in (m.message or "")


def test_missing_secret_key_is_an_error_naming_it(locked_prometheus: str, secrets: SecretDirectory) -> None:
    write_secret(secrets.root, "prometheus", username=USER)
    m = measure_prometheus(locked_prometheus, secrets, basic())
    assert m.phase == "Error"
    assert "Secret 'prometheus' has no key 'password'" in (m.message or ""), m.message


# --- bearer tokens: an authenticating proxy in front of Prometheus, and a webhook ------------------


def test_bearer_token_from_a_secret_through_an_authenticating_proxy(
    prom: RunningPrometheus, secrets: SecretDirectory
) -> None:
    auth = {"bearer": ref("prometheus", "token")}
    with auth_proxy(prom.address, "Bearer t0k3n") as port:
        address = f"http://127.0.0.1:{port}"
        write_secret(secrets.root, "prometheus", token="t0k3n\n")
        ok = measure_prometheus(address, secrets, auth)
        write_secret(secrets.root, "prometheus", token="stale")  # rotated: read again at each measurement
        refused = measure_prometheus(address, secrets, auth)
    assert ok.phase == "Successful", ok.message
    assert refused.phase == "Error" and "refused the credentials (HTTP 401)" in (refused.message or "")


def test_webhook_bearer_token_from_a_secret(secrets: SecretDirectory) -> None:
    def handle(req: BaseHTTPRequestHandler, _body: bytes) -> tuple[int, dict[str, str], bytes]:
        if req.headers.get("Authorization") != "Bearer hook-token":
            return json_reply(401, {"error": "who are you"})
        return json_reply(200, {"ok": True})

    m = metric(
        name="hook",
        provider={
            "webhook": {
                "url": "http://127.0.0.1:1/",
                "jsonPath": "$.ok",
                "retries": 0,
                "auth": {"bearer": ref("hooks", "token")},
            }
        },
        successCondition="result == true",
    )
    with serve(handle) as port:
        m.provider.webhook.url = f"http://127.0.0.1:{port}/check"  # type: ignore[union-attr]
        write_secret(secrets.root, "hooks", token="hook-token")
        ok = run(WebhookMeasurer(backoff=0).measure(m, {}, context(secrets=secrets)))
        write_secret(secrets.root, "hooks", token="not-it")
        refused = run(WebhookMeasurer(backoff=0).measure(m, {}, context(secrets=secrets)))
    assert ok.phase == "Successful", ok.message
    assert refused.phase == "Error" and "answered HTTP 401" in (refused.message or ""), refused.message
    assert "not-it" not in (refused.message or "")
