"""Reading the Secrets an analysis run references from the Kubernetes API (lightkube).

A run's providers resolve secrets synchronously, so the Secrets are read once, before the run
measures, into a `SecretValues`. A Secret that cannot be read does not stop the others: the
measurement that needs it errs with the reason (not found, forbidden), naming Secret and key."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable

from lightkube import ApiError, AsyncClient
from lightkube.resources.core_v1 import Secret

from rollwise.analysis.secrets import SecretError, SecretValues, check_ref
from rollwise.spec.analysis import SecretKeyRef


async def read_secrets(client: AsyncClient, namespace: str, refs: Iterable[SecretKeyRef]) -> SecretValues:
    values: dict[tuple[str, str], str] = {}
    problems: dict[str, str] = {}
    keys: dict[str, list[str]] = {}
    wanted: dict[str, list[str]] = {}
    for ref in refs:
        try:
            check_ref(ref)
        except SecretError as exc:
            problems[ref.name] = str(exc)
            continue
        wanted.setdefault(ref.name, []).append(ref.key)
    for name, wanted_keys in wanted.items():
        try:
            secret = await client.get(Secret, name, namespace=namespace)
        except ApiError as exc:
            code = exc.status.code
            if code == 404:
                problems[name] = "not found"
            elif code == 403:
                problems[name] = "the controller may not read it (HTTP 403): grant get on this Secret"
            else:
                problems[name] = f"cannot be read: HTTP {code}: {exc.status.message}"
            continue
        data = dict(secret.data or {})
        keys[name] = sorted(data) + sorted(set(secret.stringData or {}) - set(data))
        for key in wanted_keys:
            if key in data:
                try:
                    values[(name, key)] = base64.b64decode(data[key], validate=True).decode("utf-8")
                except (binascii.Error, UnicodeDecodeError):
                    problems[name] = f"key {key!r} is not base64-encoded UTF-8 text"
            elif secret.stringData and key in secret.stringData:
                values[(name, key)] = secret.stringData[key]
    return SecretValues(values, problems, keys, where=f"namespace {namespace!r}")
