"""How `rollwise flags` prints flags, changes and history, the same on both platforms: the local
control plane and a cluster hand these functions the same shapes (docs/local-api.md)."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table


def describe(flag: dict[str, Any] | None) -> str:
    """A flag definition in a few words: what it serves."""
    if flag is None:
        return "(none)"
    if flag.get("state") == "DISABLED":
        return "disabled"
    targeting = flag.get("targeting")
    default = flag.get("defaultVariant")
    if isinstance(targeting, dict) and list(targeting) == ["fractional"]:
        buckets = targeting["fractional"]
        pairs = [b for b in buckets if isinstance(b, list) and len(b) == 2]
        if pairs:
            return " / ".join(f"{b[0]} {b[1]}%" for b in pairs)
    if targeting:
        return f"{default} + targeting"
    return str(default)


def show_list(items: list[dict[str, Any]], output: str) -> None:
    if output == "json":
        typer.echo(json.dumps(items, indent=2))
        return
    table = Table(box=None, pad_edge=False)
    for column in ("FLAG", "FLAGSET", "STATE", "SERVING"):
        table.add_column(column)
    for item in items:
        table.add_row(item["flag"], item["flagset"], item["state"], item["serving"])
    Console(width=200).print(table)


def with_user(doc: dict[str, Any], flag: str, user: str | None) -> None:
    """Add what targetingKey `user` gets, answered by flagd's own evaluator."""
    if user is None:
        return
    from rollwise.flags.evaluate import resolve

    got = resolve(flag, doc["definition"], user)
    doc["user"] = {"targetingKey": user, "variant": got.variant, "value": got.value, "reason": got.reason}


def show_flag(doc: dict[str, Any], output: str, where: list[str]) -> None:
    """One flag; `where` are the lines saying where replicas read it (file, ConfigMap)."""
    if output == "json":
        typer.echo(json.dumps(doc, indent=2))
        return
    typer.echo(f"flag:     {doc['flag']} (FlagSet {doc['flagset']})")
    typer.echo(f"state:    {doc['state']}")
    typer.echo(f"serving:  {doc['serving']}")
    for line in where:
        typer.echo(line)
    if "user" in doc:
        u = doc["user"]
        served = "the caller's default" if u["variant"] is None else f"{u['variant']} ({json.dumps(u['value'])})"
        typer.echo(f"user {u['targetingKey']}: {served}, reason {u['reason']}")
    typer.echo(json.dumps(doc["definition"], indent=2))


def show_change(flag: str, old: dict[str, Any], new: dict[str, Any]) -> None:
    if old == new:
        typer.echo(f"{flag}: unchanged")
    else:
        typer.echo(f"{flag}: {describe(old)} -> {describe(new)}")


def show_history(items: list[dict[str, Any]], output: str) -> None:
    if output == "json":
        typer.echo(json.dumps(items, indent=2))
        return
    table = Table(box=None, pad_edge=False)
    for column in ("TIME", "FLAG", "CHANGE", "COMMAND"):
        table.add_column(column)
    for item in items:
        change = f"{describe(item['old'])} -> {describe(item['new'])}"
        table.add_row(item["time"], f"{item['flagset']}/{item['flag']}", change, item["command"])
    Console(width=240).print(table)
