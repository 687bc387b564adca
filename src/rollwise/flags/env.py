"""Flags as environment variables, for apps that read only their environment.

A process reads its environment once, at start: a changed value reaches it only through a new
process. So these values are part of the revision (a change starts a new revision, rolled out by
the rollout's strategy), unlike the flags file, which replicas re-read while they run."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from rollwise.spec.flags import FlagSet


def env_value(flag: dict[str, Any]) -> str | None:
    """The flag's value with no evaluation context: the default variant's value (targeting needs
    a user, which an environment variable cannot have). None when the flag is DISABLED: the app
    then uses its own default, as an OpenFeature client would."""
    if flag.get("state", "ENABLED") == "DISABLED":
        return None
    value = (flag.get("variants") or {}).get(flag.get("defaultVariant"))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def env_of(fs: FlagSet) -> dict[str, str]:
    doc = fs.flagd_document()["flags"]
    out: dict[str, str] = {}
    for item in fs.spec.env or []:
        flag = doc.get(item.flag)
        value = None if flag is None else env_value(flag)
        if value is not None:
            out[item.name] = value
    return out


def env_hash(env: dict[str, str]) -> str:
    text = json.dumps(env, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
