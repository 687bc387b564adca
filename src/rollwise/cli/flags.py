"""`rollwise flags list|get|set|enable|disable|rollout|history`: feature toggles of the applied
FlagSets on the local platform. A change rewrites the flags file replicas read (no restart, no
new revision) and is recorded with the command that made it."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.console import Console
from rich.table import Table

from rollwise.cli.errors import CliError
from rollwise.cli.local_client import Client
from rollwise.cli.options import DEFAULT_DIR, Output, StateDir, check_output

app = typer.Typer(
    help="Feature flags (OpenFeature flagd format): list, change, roll out progressively, history.",
    no_args_is_help=True,
)

FlagArg = Annotated[str, typer.Argument(help="The flag key.")]
FlagSetOpt = Annotated[
    str | None, typer.Option("--flagset", help="The FlagSet holding the flag (needed when several do).")
]
FINAL = ("Completed", "Reverted", "Aborted")


def _flag_path(flag: str, sub: str = "") -> str:
    return f"/v1/flags/{quote(flag, safe='')}" + (f"/{sub}" if sub else "")


def _command(*words: str | None) -> str:
    return shlex.join(["rollwise", "flags", *(w for w in words if w is not None)])


@app.command("list")
def list_flags(flagset: FlagSetOpt = None, state_dir: StateDir = Path(DEFAULT_DIR), output: Output = "text") -> None:
    """Every flag of the applied FlagSets and what it serves."""
    check_output(output)
    items = Client(state_dir).call("GET", "/v1/flags", query={"flagset": flagset})["items"]
    if output == "json":
        typer.echo(json.dumps(items, indent=2))
        return
    table = Table(box=None, pad_edge=False)
    for column in ("FLAG", "FLAGSET", "STATE", "SERVING"):
        table.add_column(column)
    for item in items:
        table.add_row(item["flag"], item["flagset"], item["state"], item["serving"])
    Console(width=200).print(table)


@app.command("get")
def get(
    flag: FlagArg,
    flagset: FlagSetOpt = None,
    user: Annotated[
        str | None, typer.Option("--user", help="Also show what this targetingKey gets (flagd's own evaluator).")
    ] = None,
    state_dir: StateDir = Path(DEFAULT_DIR),
    output: Output = "text",
) -> None:
    """One flag: its definition (flagd JSON), what it serves, and the file replicas read."""
    check_output(output)
    doc = Client(state_dir).call("GET", _flag_path(flag), query={"flagset": flagset})
    if user is not None:
        from rollwise.flags.evaluate import resolve

        got = resolve(flag, doc["definition"], user)
        doc["user"] = {"targetingKey": user, "variant": got.variant, "value": got.value, "reason": got.reason}
    if output == "json":
        typer.echo(json.dumps(doc, indent=2))
        return
    typer.echo(f"flag:     {doc['flag']} (FlagSet {doc['flagset']})")
    typer.echo(f"state:    {doc['state']}")
    typer.echo(f"serving:  {doc['serving']}")
    typer.echo(f"file:     {doc['file']}")
    if "user" in doc:
        u = doc["user"]
        served = "the caller's default" if u["variant"] is None else f"{u['variant']} ({json.dumps(u['value'])})"
        typer.echo(f"user {u['targetingKey']}: {served}, reason {u['reason']}")
    typer.echo(json.dumps(doc["definition"], indent=2))


def _change(state_dir: Path, flag: str, body: dict[str, Any]) -> None:
    doc = Client(state_dir).call("POST", _flag_path(flag), body)
    if not doc["changed"]:
        typer.echo(f"{flag}: unchanged")
        return
    typer.echo(f"{flag}: {describe(doc['old'])} -> {describe(doc['new'])}")


@app.command("enable")
def enable(flag: FlagArg, flagset: FlagSetOpt = None, state_dir: StateDir = Path(DEFAULT_DIR)) -> None:
    """Turn the flag on (a boolean flag serves its true variant to everyone)."""
    _change(state_dir, flag, {"action": "enable", "flagset": flagset, "command": _command("enable", flag)})


@app.command("disable")
def disable(flag: FlagArg, flagset: FlagSetOpt = None, state_dir: StateDir = Path(DEFAULT_DIR)) -> None:
    """Turn the flag off: apps get the default they pass to their OpenFeature client."""
    _change(state_dir, flag, {"action": "disable", "flagset": flagset, "command": _command("disable", flag)})


@app.command("set")
def set_variant(
    flag: FlagArg,
    variant: Annotated[str, typer.Argument(help="The variant everyone gets (its default variant).")],
    flagset: FlagSetOpt = None,
    state_dir: StateDir = Path(DEFAULT_DIR),
) -> None:
    """Serve one variant to everyone (ends a percentage split)."""
    body = {"action": "set", "variant": variant, "flagset": flagset, "command": _command("set", flag, variant)}
    _change(state_dir, flag, body)


@app.command("rollout")
def rollout(
    flag: FlagArg,
    percent: Annotated[int | None, typer.Option("--percent", help="Share of users to reach (1-100).")] = None,
    step: Annotated[int | None, typer.Option("--step", help="Raise by this many points per step.")] = None,
    interval: Annotated[str, typer.Option("--interval", help="Time at each step (30s, 5m).")] = "1m",
    variant: Annotated[
        str | None, typer.Option("--variant", help="The variant rolled out (a boolean flag: its true one).")
    ] = None,
    analysis: Annotated[
        list[str] | None, typer.Option("--analysis", help="AnalysisTemplate to watch with (repeatable).")
    ] = None,
    rollout_name: Annotated[
        str | None, typer.Option("--rollout", help="The rollout whose traffic the analysis measures.")
    ] = None,
    abort: Annotated[bool, typer.Option("--abort", help="Stop the rollout and put the flag back.")] = False,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Follow until the rollout ends.")] = False,
    flagset: FlagSetOpt = None,
    state_dir: StateDir = Path(DEFAULT_DIR),
    output: Output = "text",
) -> None:
    """Roll a flag out progressively: --percent N [--step P --interval T] [--analysis TEMPLATE].
    Without --percent, show the rollout in progress; with --abort, stop it and revert the flag."""
    check_output(output)
    client = Client(state_dir)
    path = _flag_path(flag, "rollout")
    if abort:
        doc = client.call("DELETE", path, query={"flagset": flagset})
    elif percent is not None:
        words = ["rollout", flag, "--percent", str(percent)]
        if step is not None:
            words += ["--step", str(step), "--interval", interval]
        for name in analysis or []:
            words += ["--analysis", name]
        body = {
            "percent": percent,
            "step": step,
            "interval": interval,
            "variant": variant,
            "analysis": analysis or [],
            "rollout": rollout_name,
            "flagset": flagset,
            "command": _command(*words),
        }
        doc = client.call("POST", path, body)
    else:
        doc = client.call("GET", path, query={"flagset": flagset})
    _show_rollout(doc, output)
    seen = doc["message"]
    while watch and doc["phase"] not in FINAL:
        time.sleep(1.0)
        doc = client.call("GET", path, query={"flagset": flagset})
        if doc["message"] != seen:
            seen = doc["message"]
            _show_rollout(doc, output)
    if doc["phase"] in ("Reverted", "Aborted") and (watch or abort):
        raise typer.Exit(1 if doc["phase"] == "Reverted" else 0)


def _show_rollout(doc: dict[str, Any], output: str) -> None:
    if output == "json":
        typer.echo(json.dumps(doc, indent=2))
        return
    line = f"{doc['flag']}: {doc['phase']} at {doc['percent']}% (target {doc['targetPercent']}%): {doc['message']}"
    analysis = doc.get("analysis")
    if analysis and analysis.get("phase"):
        line += f"; analysis {analysis['phase']}"
    typer.echo(line)


@app.command("history")
def history(
    flag: Annotated[str | None, typer.Argument(help="Only this flag.")] = None,
    flagset: FlagSetOpt = None,
    limit: Annotated[int, typer.Option("--limit", help="The newest N changes.")] = 50,
    state_dir: StateDir = Path(DEFAULT_DIR),
    output: Output = "text",
) -> None:
    """Every change to the flags: when, which flag, old -> new, and the command that made it."""
    check_output(output)
    if limit < 1:
        raise CliError("--limit must be at least 1")
    query = {"flag": flag, "flagset": flagset, "limit": limit}
    items = Client(state_dir).call("GET", "/v1/flag-history", query=query)["items"]
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
