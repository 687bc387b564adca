"""The flagd document of a FlagSet and the changes the CLI makes to one flag.

A change is made to the FlagSet resource (the source of truth) and the document is rendered
from it again, so a file or ConfigMap never holds anything the resource does not say."""

from __future__ import annotations

import copy
import json
from typing import Any

from rollwise.spec.flags import FlagSet

SCHEMA = "https://flagd.dev/schema/v0/flags.json"


class FlagChangeError(ValueError):
    """A change that cannot be made to this flag; the message names the flag and what is wrong."""


def render(fs: FlagSet) -> dict[str, Any]:
    return fs.flagd_document()


def dumps(document: dict[str, Any]) -> str:
    """The exact text written to the file and the ConfigMap: stable key order as given, one
    trailing newline, so that an unchanged flag set writes byte-identical text."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def flag_of(resource: dict[str, Any], key: str) -> dict[str, Any]:
    flags = (resource.get("spec") or {}).get("flags") or {}
    if key not in flags:
        name = (resource.get("metadata") or {}).get("name", "?")
        known = ", ".join(sorted(flags)) or "none"
        raise FlagChangeError(f"FlagSet {name!r} has no flag {key!r} (flags: {known})")
    flag: dict[str, Any] = flags[key]
    return flag


def changed(resource: dict[str, Any], key: str, flag: dict[str, Any]) -> dict[str, Any]:
    """A copy of the FlagSet resource with flag `key` replaced."""
    out = copy.deepcopy(resource)
    out["spec"]["flags"][key] = flag
    return out


def enable(flag: dict[str, Any]) -> dict[str, Any]:
    """ENABLED; a boolean flag also turns on: its default variant becomes the one whose value is
    true and any percentage rollout ends (everyone gets it)."""
    out = {**flag, "state": "ENABLED"}
    if _is_boolean(flag):
        out["defaultVariant"] = on_variant(flag, None)
        if is_percentage(flag.get("targeting"), flag):
            out.pop("targeting", None)
    return out


def disable(flag: dict[str, Any]) -> dict[str, Any]:
    """DISABLED: flagd answers the caller's own default value, whatever the variants say. A
    percentage rollout is dropped too, so enabling later starts from no one."""
    out = {**flag, "state": "DISABLED"}
    if is_percentage(flag.get("targeting"), flag):
        out.pop("targeting", None)
        if _is_boolean(flag):
            out["defaultVariant"] = off_variant(flag, on_variant(flag, None))
    return out


def set_variant(flag: dict[str, Any], variant: str) -> dict[str, Any]:
    variants = flag.get("variants") or {}
    if variant not in variants:
        raise FlagChangeError(f"{variant!r} is not one of the variants ({', '.join(variants)})")
    out = {**flag, "defaultVariant": variant}
    if is_percentage(flag.get("targeting"), flag):
        out.pop("targeting", None)
    return out


def set_percent(flag: dict[str, Any], percent: int, on: str, off: str) -> dict[str, Any]:
    """`percent` of users (bucketed by flagd on the flag key and the evaluation's targetingKey)
    get `on`, the others `off`. `on` comes first so that raising the percentage only adds users:
    a user's bucket never moves, and the `on` range grows from 0 upwards."""
    if not 0 <= percent <= 100:
        raise FlagChangeError(f"percent must be between 0 and 100 (got {percent})")
    return {
        **flag,
        "state": "ENABLED",
        "defaultVariant": off,
        "targeting": {"fractional": [[on, percent], [off, 100 - percent]]},
    }


def percent_of(flag: dict[str, Any]) -> int | None:
    """The share of users on the first variant, when the targeting is a plain percentage split."""
    targeting = flag.get("targeting")
    if not is_percentage(targeting, flag):
        return None
    assert isinstance(targeting, dict)
    weight: int = targeting["fractional"][0][1]
    return weight


def is_percentage(targeting: Any, flag: dict[str, Any]) -> bool:
    """Is this the two-bucket split `set_percent` writes (and nothing more)?"""
    if not isinstance(targeting, dict) or list(targeting) != ["fractional"]:
        return False
    buckets = targeting["fractional"]
    return (
        isinstance(buckets, list)
        and len(buckets) == 2
        and all(isinstance(b, list) and len(b) == 2 and isinstance(b[1], int) for b in buckets)
        and buckets[0][1] + buckets[1][1] == 100
        and all(b[0] in (flag.get("variants") or {}) for b in buckets)
    )


def on_variant(flag: dict[str, Any], given: str | None) -> str:
    """The variant a rollout turns on: the one named, else for a boolean flag the true one."""
    variants: dict[str, Any] = flag.get("variants") or {}
    if given is not None:
        if given not in variants:
            raise FlagChangeError(f"{given!r} is not one of the variants ({', '.join(variants)})")
        return given
    trues = [str(name) for name, value in variants.items() if value is True]
    if len(trues) != 1:
        raise FlagChangeError("the flag is not a boolean on/off flag: name the variant to roll out with --variant")
    return trues[0]


def off_variant(flag: dict[str, Any], on: str) -> str:
    """What users outside the percentage get: for a boolean flag the false variant, else the
    default variant (unless that is the one rolled out)."""
    variants: dict[str, Any] = flag.get("variants") or {}
    if _is_boolean(flag):
        return next(str(name) for name, value in variants.items() if value is False)
    default = flag.get("defaultVariant")
    if default != on and default in variants:
        return str(default)
    others = [str(name) for name in variants if name != on]
    if not others:
        raise FlagChangeError("a percentage rollout needs a second variant for everyone else")
    return others[0]


def _is_boolean(flag: dict[str, Any]) -> bool:
    values = list((flag.get("variants") or {}).values())
    return sorted(values, key=str) == [False, True]


def summary(flag: dict[str, Any]) -> dict[str, Any]:
    """What `flags list` shows of a flag."""
    state = flag.get("state", "ENABLED")
    percent = percent_of(flag)
    default = flag.get("defaultVariant")
    if state == "DISABLED":
        serving = "(disabled: callers get their own default)"
    elif percent is not None:
        first = flag["targeting"]["fractional"][0][0]
        serving = f"{first} to {percent}% of users, else {default}"
    elif flag.get("targeting"):
        serving = f"targeting rules, else {default}"
    else:
        serving = str(default)
    return {"state": state, "defaultVariant": default, "percent": percent, "serving": serving}
