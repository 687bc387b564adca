"""`rollwise flags ...` against a cluster (the emulated API server): the verbs edit the FlagSet
object as the field manager rollwise-cli, keep the bounded history in its annotation, tell whether
the controller has written the ConfigMap yet, and fail with one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from lightkube import AsyncClient
from lightkube.types import PatchType

from rollwise.cli.kube_client import FlagSet
from rollwise.cli.kube_flags import HISTORY_ANNOTATION, HISTORY_BYTES, HISTORY_ENTRIES, bounded, history_entry
from rollwise.flags.kube import apply_flagset
from rollwise.testing.kubeapi import ApiServer
from tests.kube.test_cli_cluster import API, Outcome, cli, make_namespace, stored, write_kubeconfig, write_yaml

pytestmark = pytest.mark.asyncio


def flagset(name: str = "web-flags", **flags: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "FlagSet", "metadata": {"name": name}, "spec": {"flags": flags}}


# `state` spelled out: the CRD's default for it is written into the stored object.
GREETING = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"}
SPLIT = {**GREETING, "targeting": {"fractional": [["on", 30], ["off", 70]]}}
COLOR = {"state": "ENABLED", "variants": {"red": "red", "green": "green"}, "defaultVariant": "red"}


class Flags:
    """The CLI against namespace `team` of the emulator, as a user types it."""

    def __init__(self, api: ApiServer, tmp_path: Path) -> None:
        self.api = api
        self.kc = write_kubeconfig(api, tmp_path / "kubeconfig")
        self.tmp = tmp_path

    async def __call__(self, *args: str) -> Outcome:
        return await cli("flags", *args, "--kubeconfig", str(self.kc), "-n", "team")

    async def apply(self, *docs: dict[str, Any]) -> None:
        path = write_yaml(self.tmp / "flags.yaml", *docs)
        out = await cli("apply", "-f", str(path), "--kubeconfig", str(self.kc), "-n", "team")
        assert out.code == 0, out

    def stored(self, name: str = "web-flags") -> dict[str, Any]:
        obj = stored(self.api, "FlagSet", "team", name)
        assert obj is not None
        return obj

    def history(self, name: str = "web-flags") -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(self.stored(name)["metadata"]["annotations"][HISTORY_ANNOTATION])
        return items


async def test_changes_edit_the_flagset_and_are_shown_in_history(
    api: ApiServer, client: AsyncClient, tmp_path: Path
) -> None:
    await make_namespace(client, "team")
    flags = Flags(api, tmp_path)
    await flags.apply(flagset(**{"new-greeting": SPLIT, "banner-color": COLOR}))

    listed = await flags("list")
    assert listed.code == 0, listed
    rows = {line.split()[0]: line for line in listed.out.splitlines()[1:]}
    assert "on to 30% of users, else off" in rows["new-greeting"] and "web-flags" in rows["new-greeting"]
    assert rows["banner-color"].split()[1:] == ["web-flags", "ENABLED", "red"]

    # Enable ends the percentage split: the flag is replaced whole, its targeting gone.
    enabled = await flags("enable", "new-greeting")
    assert enabled.code == 0 and enabled.out == "new-greeting: on 30% / off 70% -> on\n", enabled
    obj = flags.stored()
    assert obj["spec"]["flags"]["new-greeting"] == {**GREETING, "defaultVariant": "on"}
    assert obj["spec"]["flags"]["banner-color"] == COLOR
    managers = {(m["manager"], m["operation"]) for m in obj["metadata"]["managedFields"]}
    assert ("rollwise-cli", "Update") in managers

    assert (await flags("set", "banner-color", "green")).out == "banner-color: red -> green\n"
    assert (await flags("disable", "new-greeting")).out == "new-greeting: on -> disabled\n"
    assert (await flags("disable", "new-greeting")).out == "new-greeting: unchanged\n"
    assert flags.stored()["spec"]["flags"]["new-greeting"]["state"] == "DISABLED"

    history = flags.history()
    assert [(h["flag"], h["command"]) for h in history] == [
        ("new-greeting", "rollwise flags enable new-greeting"),
        ("banner-color", "rollwise flags set banner-color green"),
        ("new-greeting", "rollwise flags disable new-greeting"),
    ]
    assert history[0]["old"] == SPLIT and history[0]["new"]["defaultVariant"] == "on"

    shown = await flags("history")
    assert shown.code == 0, shown
    lines = shown.out.splitlines()[1:]
    assert len(lines) == 3
    assert "web-flags/new-greeting" in lines[0] and "on 30% / off 70% -> on" in lines[0]
    assert "red -> green" in lines[1] and "rollwise flags set banner-color green" in lines[1]
    assert "on -> disabled" in lines[2]
    only = json.loads((await flags("history", "banner-color", "-o", "json")).out)
    assert [(i["flagset"], i["flag"], i["new"]["defaultVariant"]) for i in only] == [
        ("web-flags", "banner-color", "green")
    ]

    # The file applied again: the fields the CLI changed (an Update by rollwise-cli) show as
    # conflicts, and a forced apply puts the file's values back.
    path = write_yaml(tmp_path / "again.yaml", flagset(**{"new-greeting": SPLIT, "banner-color": COLOR}))
    refused = await cli("apply", "-f", str(path), "--kubeconfig", str(flags.kc), "-n", "team")
    assert refused.code == 1 and "--force-conflicts" in refused.err, refused
    assert '.spec.flags.banner-color.defaultVariant: conflict with "rollwise-cli"' in refused.err
    again = await cli("apply", "-f", str(path), "--kubeconfig", str(flags.kc), "-n", "team", "--force-conflicts")
    assert again.code == 0, again
    assert flags.stored()["spec"]["flags"]["banner-color"]["defaultVariant"] == "red"


async def test_get_tells_whether_the_controller_wrote_the_configmap(
    api: ApiServer, client: AsyncClient, tmp_path: Path
) -> None:
    await make_namespace(client, "team")
    flags = Flags(api, tmp_path)
    await flags.apply(flagset(**{"new-greeting": SPLIT}))

    missing = await flags("get", "new-greeting")
    assert missing.code == 0, missing
    assert "configmap: web-flags-flags (key flags.json): missing" in missing.out

    # What the controller does with the FlagSet (rollwise.flags.kube): then the ConfigMap is current.
    await apply_flagset(client, flags.stored(), "rollwise")
    current = await flags("get", "new-greeting", "--user", "user-1", "-o", "json")
    doc = json.loads(current.out)
    assert doc["configMapState"] == "up to date" and doc["definition"] == SPLIT
    assert doc["user"]["variant"] in ("on", "off") and doc["user"]["reason"] == "TARGETING_MATCH"

    await flags("enable", "new-greeting")
    stale = await flags("get", "new-greeting")
    assert "configmap: web-flags-flags (key flags.json): not yet written by the controller" in stale.out
    assert "user" not in stale.out
    await apply_flagset(client, flags.stored(), "rollwise")
    assert "(key flags.json): up to date" in (await flags("get", "new-greeting")).out


async def test_history_keeps_the_last_changes_only(api: ApiServer, client: AsyncClient, tmp_path: Path) -> None:
    await make_namespace(client, "team")
    flags = Flags(api, tmp_path)
    await flags.apply(flagset(**{"new-greeting": GREETING}))
    for n in range(HISTORY_ENTRIES + 3):
        out = await flags("enable" if n % 2 == 0 else "disable", "new-greeting")
        assert out.code == 0, out
    kept = flags.history()
    assert len(kept) == HISTORY_ENTRIES
    assert kept[-1]["command"] == "rollwise flags enable new-greeting"  # the newest (n = 22) is kept
    assert kept[0]["command"] == "rollwise flags disable new-greeting"  # n = 3: the three oldest went
    shown = await flags("history", "--limit", "5")
    assert len(shown.out.splitlines()) == 1 + 5

    # Large definitions: fewer entries, always within the byte bound; one alone keeps its command.
    big = {"variants": {f"v{i}": "x" * 500 for i in range(40)}, "defaultVariant": "v0"}
    items = [history_entry(f"2026-01-01T00:00:{i:02d}Z", "f", big, big, f"c{i}") for i in range(5)]
    text = bounded(items)
    assert len(text.encode()) <= HISTORY_BYTES
    kept_big = json.loads(text)
    assert [i["command"] for i in kept_big] == ["c4"] and kept_big[0]["old"] is None


async def test_errors_are_one_line(api: ApiServer, client: AsyncClient, tmp_path: Path) -> None:
    await make_namespace(client, "team")
    flags = Flags(api, tmp_path)
    await flags.apply(flagset(**{"new-greeting": GREETING}), flagset("other-flags", **{"new-greeting": GREETING}))

    def one_line(out: Outcome, text: str) -> None:
        assert out.code == 1, out
        assert out.err == f"rollwise: {text}\n", out

    one_line(await flags("enable", "nope"), "no flag 'nope' in any FlagSet of namespace team")
    one_line(
        await flags("enable", "new-greeting"),
        "flag 'new-greeting' is in several FlagSets (other-flags, web-flags); name one with --flagset",
    )
    one_line(await flags("get", "new-greeting", "--flagset", "gone"), "FlagSet gone not found in namespace team")
    one_line(
        await flags("set", "new-greeting", "purple", "--flagset", "web-flags"),
        "new-greeting: 'purple' is not one of the variants (on, off)",
    )
    one_line(
        await flags("rollout", "new-greeting", "--percent", "50", "--flagset", "web-flags"),
        "progressive flag rollouts run on the local platform only; the Kubernetes controller does not run them "
        "(change new-greeting for everyone with `rollwise flags enable|disable|set`)",
    )
    # Nothing was changed, so nothing was recorded.
    assert HISTORY_ANNOTATION not in (flags.stored()["metadata"].get("annotations") or {})

    # A FlagSet someone wrote past lint (a split that does not add up): a change to it is refused
    # with lint's problems, and nothing is written.
    obj = flags.stored("other-flags")
    obj["spec"]["flags"]["bad-split"] = {**GREETING, "targeting": {"fractional": [["on", 30], ["off", 30]]}}
    await client.patch(FlagSet, "other-flags", {"spec": obj["spec"]}, namespace="team", patch_type=PatchType.MERGE)
    refused = await flags("enable", "new-greeting", "--flagset", "other-flags")
    assert refused.code == 1, refused
    *details, last = refused.err.splitlines()
    assert last == "rollwise: the change would make FlagSet other-flags invalid; nothing was changed"
    assert details and all(d.startswith("flagset/other-flags:") for d in details), details
    assert any("spec.flags.bad-split" in d for d in details), details
    assert flags.stored("other-flags")["spec"]["flags"]["new-greeting"] == GREETING
