"""Feature flags on the local platform: the applied FlagSets (the source of truth, in the store),
their flagd files (what replicas read), and every change to a flag recorded with the command that
made it.

A change made by `rollwise flags ...` edits the stored FlagSet and goes through the same load and
lint as `rollwise apply`, so a change that would make a bad document is refused with the same
messages. After any change the file is rewritten atomically; running replicas pick it up without
a restart."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rollwise.flags import document
from rollwise.platforms.local.daemon import apply, flags_files
from rollwise.platforms.local.store import FlagChange, ResourceRecord, Store
from rollwise.spec.flags import FlagSet

log = logging.getLogger("rollwise.daemon.flags")

KIND = "FlagSet"


class FlagError(Exception):
    def __init__(self, status: int, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.problems = problems or []


@dataclass(frozen=True)
class Located:
    record: ResourceRecord
    key: str

    @property
    def flagset(self) -> str:
        return self.record.name

    @property
    def namespace(self) -> str:
        return self.record.namespace

    @property
    def flag(self) -> dict[str, Any]:
        return document.flag_of(self.record.document, self.key)


class FlagService:
    def __init__(self, state_dir: Path, store: Store) -> None:
        self.state_dir = state_dir
        self.store = store

    # --- files ----------------------------------------------------------------------------------

    def sync(self) -> None:
        """Write the file of every applied FlagSet (at start: the store is what counts)."""
        for record in self.store.list_resources(KIND):
            try:
                flags_files.write_flagset(self.state_dir, FlagSet.model_validate(record.document))
            except (OSError, ValueError) as exc:
                log.warning("cannot write the flags file of %s: %s", record.name, exc)

    def file_of(self, namespace: str, name: str) -> Path:
        return flags_files.flags_file(self.state_dir, namespace, name)

    def applied(self, namespace: str, name: str, command: str) -> None:
        """A FlagSet was applied: record what changed against the file replicas read, then write it."""
        record = self.store.get_resource(KIND, namespace, name)
        if record is None:
            return
        path = self.file_of(namespace, name)
        try:
            before = json.loads(path.read_text()).get("flags") or {}
        except (OSError, ValueError, AttributeError):
            before = {}
        fs = FlagSet.model_validate(record.document)
        after = document.render(fs)["flags"]
        for key in sorted(set(before) | set(after)):
            old, new = before.get(key), after.get(key)
            if old != new:
                self.store.record_flag_change(name, key, old, new, command)
        flags_files.write_flagset(self.state_dir, fs)

    # --- reading --------------------------------------------------------------------------------

    def flags(self, flagset: str | None) -> list[dict[str, Any]]:
        out = []
        for record in self.store.list_resources(KIND):
            if flagset is not None and record.name != flagset:
                continue
            flags = (record.document.get("spec") or {}).get("flags") or {}
            for key, flag in flags.items():
                out.append(self._view(record, key, flag))
        return out

    def _view(self, record: ResourceRecord, key: str, flag: dict[str, Any]) -> dict[str, Any]:
        return {
            "flag": key,
            "flagset": record.name,
            "namespace": record.namespace,
            **document.summary(flag),
            "variants": flag.get("variants"),
            "file": str(self.file_of(record.namespace, record.name)),
        }

    def locate(self, key: str, flagset: str | None) -> Located:
        found = [
            r
            for r in self.store.list_resources(KIND)
            if (flagset is None or r.name == flagset) and key in ((r.document.get("spec") or {}).get("flags") or {})
        ]
        if not found:
            where = f"FlagSet {flagset!r}" if flagset else "any applied FlagSet"
            raise FlagError(404, f"no flag {key!r} in {where}")
        if len(found) > 1:
            names = ", ".join(sorted(r.name for r in found))
            raise FlagError(409, f"flag {key!r} is in several FlagSets ({names}); name one with --flagset")
        return Located(found[0], key)

    def details(self, key: str, flagset: str | None) -> dict[str, Any]:
        at = self.locate(key, flagset)
        return {**self._view(at.record, key, at.flag), "definition": at.flag}

    def history(self, flagset: str | None, flag: str | None, limit: int | None) -> list[FlagChange]:
        return self.store.flag_history(flagset, flag, limit)

    # --- changing -------------------------------------------------------------------------------

    def change(
        self, at: Located, edit: Callable[[dict[str, Any]], dict[str, Any]], command: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Apply `edit` to the flag, through load and lint; returns (old, new) flag definitions."""
        current = self.store.get_resource(KIND, at.namespace, at.flagset)
        if current is None:
            raise FlagError(404, f"FlagSet {at.flagset!r} is no longer applied")
        try:
            old = document.flag_of(current.document, at.key)
            new = edit(old)
        except document.FlagChangeError as exc:
            raise FlagError(400, f"{at.key}: {exc}") from None
        if new == old:
            return old, new
        resource = document.changed(current.document, at.key, new)
        label = f"({command})"
        result = apply.apply(self.store, yaml.safe_dump(resource, sort_keys=False), label)
        if result.errors:
            raise FlagError(
                422,
                f"the change would make {at.flagset!r} invalid; nothing was changed",
                [str(p) for p in result.errors],
            )
        self.applied(at.namespace, at.flagset, command)
        return old, new
