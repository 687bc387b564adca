"""`rollwise flags list|get|set|enable|disable|rollout|history`: feature toggles of the applied
FlagSets. Locally a change rewrites the flags file replicas read (no restart, no new revision) and
is recorded with the command that made it. On a cluster (the platform rule of cli/platform.py)
the verbs edit the FlagSet object (kube_flags.py), which the controller writes into its ConfigMap."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from rollwise.cli import kube_flags
from rollwise.cli.errors import CliError
from rollwise.cli.flags_view import show_change, show_flag, show_history, show_list, with_user
from rollwise.cli.local_client import Client
from rollwise.cli.options import DEFAULT_DIR, Output, StateDir, check_output
from rollwise.cli.platform import both

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


def list_flags(flagset: FlagSetOpt = None, state_dir: StateDir = Path(DEFAULT_DIR), output: Output = "text") -> None:
    """Every flag of the applied FlagSets and what it serves."""
    check_output(output)
    items = Client(state_dir).call("GET", "/v1/flags", query={"flagset": flagset})["items"]
    show_list(items, output)


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
    with_user(doc, flag, user)
    show_flag(doc, output, [f"file:     {doc['file']}"])


def _change(state_dir: Path, flag: str, body: dict[str, Any]) -> None:
    doc = Client(state_dir).call("POST", _flag_path(flag), body)
    show_change(flag, doc["old"], doc["new"])


def enable(flag: FlagArg, flagset: FlagSetOpt = None, state_dir: StateDir = Path(DEFAULT_DIR)) -> None:
    """Turn the flag on (a boolean flag serves its true variant to everyone)."""
    _change(state_dir, flag, {"action": "enable", "flagset": flagset, "command": _command("enable", flag)})


def disable(flag: FlagArg, flagset: FlagSetOpt = None, state_dir: StateDir = Path(DEFAULT_DIR)) -> None:
    """Turn the flag off: apps get the default they pass to their OpenFeature client."""
    _change(state_dir, flag, {"action": "disable", "flagset": flagset, "command": _command("disable", flag)})


def set_variant(
    flag: FlagArg,
    variant: Annotated[str, typer.Argument(help="The variant everyone gets (its default variant).")],
    flagset: FlagSetOpt = None,
    state_dir: StateDir = Path(DEFAULT_DIR),
) -> None:
    """Serve one variant to everyone (ends a percentage split)."""
    body = {"action": "set", "variant": variant, "flagset": flagset, "command": _command("set", flag, variant)}
    _change(state_dir, flag, body)


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
    resume: Annotated[
        bool, typer.Option("--resume", help="Go on from a pause (e.g. an inconclusive verdict) with a fresh analysis.")
    ] = False,
    promote: Annotated[bool, typer.Option("--promote", help="Skip to the next step now.")] = False,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Follow until the rollout ends.")] = False,
    flagset: FlagSetOpt = None,
    state_dir: StateDir = Path(DEFAULT_DIR),
    output: Output = "text",
) -> None:
    """Roll a flag out progressively: --percent N [--step P --interval T] [--analysis TEMPLATE].
    Without --percent, show the rollout in progress; --resume goes on from a pause, --promote skips
    to the next step, --abort stops it and reverts the flag."""
    check_output(output)
    actions = [
        name
        for name, given in (
            ("--percent", percent is not None),
            ("--abort", abort),
            ("--resume", resume),
            ("--promote", promote),
        )
        if given
    ]
    if len(actions) > 1:
        raise typer.BadParameter(f"give one of {', '.join(actions)}", param_hint=actions[0])
    client = Client(state_dir)
    path = _flag_path(flag, "rollout")
    if abort:
        doc = client.call("DELETE", path, query={"flagset": flagset})
    elif resume or promote:
        doc = client.call("POST", f"{path}/{'resume' if resume else 'promote'}", {"flagset": flagset})
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
    show_history(items, output)


app.command("list")(both(list_flags, kube_flags.list_flags))
app.command("get")(both(get, kube_flags.get))
app.command("enable")(both(enable, kube_flags.enable))
app.command("disable")(both(disable, kube_flags.disable))
app.command("set")(both(set_variant, kube_flags.set_variant))
app.command("rollout")(both(rollout, kube_flags.rollout))
app.command("history")(both(history, kube_flags.history))
