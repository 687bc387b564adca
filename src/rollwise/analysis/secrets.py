"""Where `secretKeyRef` values come from: a `SecretResolver` per platform.

- Local platform: `SecretDirectory`, files laid out as Kubernetes mounts a Secret,
  `<state dir>/secrets/<name>/<key>`, one file per key, read at each use (so a rotated
  credential takes effect at the next measurement).
- Kubernetes: `SecretValues`, filled from the Secrets of the run's namespace before the run
  measures (secrets_kubernetes.read_secrets), since a resolver is called synchronously.

Every failure names the Secret and the key, and says where they were looked for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from rollwise.analysis.args import ArgumentError
from rollwise.spec.analysis import Argument, HttpAuth, Metric, SecretKeyRef, SecretSource

LOCAL_SECRETS_DIR = "secrets"
# What Kubernetes allows: a Secret's name is a DNS subdomain, a key `[-._a-zA-Z0-9]+`. Checking
# both also keeps a reference from naming a path outside the secrets directory.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


class SecretError(ArgumentError):
    """A referenced Secret or key is missing or unreadable."""


def check_ref(ref: SecretKeyRef) -> None:
    if len(ref.name) > 253 or not _NAME.match(ref.name):
        raise SecretError(f"Secret name {ref.name!r} is not a valid name (lowercase DNS subdomain)")
    if len(ref.key) > 253 or not _KEY.match(ref.key) or ref.key in (".", ".."):
        raise SecretError(f"Secret {ref.name!r}: key {ref.key!r} is not a valid key (letters, digits, '-', '_', '.')")


class SecretDirectory:
    """The local platform's Secrets: `<root>/<name>/<key>`. A single trailing newline is dropped,
    since `echo token > file` writes one and no credential ends with one."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def of_state_dir(cls, state_dir: Path) -> SecretDirectory:
        return cls(state_dir / LOCAL_SECRETS_DIR)

    def read(self, ref: SecretKeyRef) -> str:
        check_ref(ref)
        folder = self.root / ref.name
        path = folder / ref.key
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            if not folder.is_dir():
                raise SecretError(
                    f"Secret {ref.name!r} not found: no directory {folder} "
                    f"(the local platform reads key {ref.key!r} of it from {path})"
                ) from None
            keys = ", ".join(sorted(p.name for p in folder.iterdir() if p.is_file())) or "none"
            raise SecretError(f"Secret {ref.name!r} has no key {ref.key!r}: no file {path} (keys: {keys})") from None
        except UnicodeDecodeError:
            raise SecretError(f"Secret {ref.name!r} key {ref.key!r}: {path} is not UTF-8 text") from None
        except OSError as exc:
            raise SecretError(f"Secret {ref.name!r} key {ref.key!r}: cannot read {path}: {exc.strerror}") from None
        return text[:-1] if text.endswith("\n") else text


class SecretValues:
    """Secret keys read beforehand: `values[(name, key)]`, with `problems[name]` saying why a
    Secret could not be read. `where` names the place for messages (a namespace)."""

    def __init__(
        self,
        values: Mapping[tuple[str, str], str],
        problems: Mapping[str, str] | None = None,
        keys: Mapping[str, Sequence[str]] | None = None,
        *,
        where: str,
    ) -> None:
        self.values = dict(values)
        self.problems = dict(problems or {})
        self.keys = {k: list(v) for k, v in (keys or {}).items()}
        self.where = where

    def read(self, ref: SecretKeyRef) -> str:
        value = self.values.get((ref.name, ref.key))
        if value is not None:
            return value
        if ref.name in self.problems:
            raise SecretError(f"Secret {ref.name!r} in {self.where}: {self.problems[ref.name]}")
        if ref.name in self.keys:
            keys = ", ".join(sorted(self.keys[ref.name])) or "none"
            raise SecretError(f"Secret {ref.name!r} in {self.where} has no key {ref.key!r} (keys: {keys})")
        raise SecretError(f"Secret {ref.name!r} key {ref.key!r} in {self.where} was not read before the run")


def secret_refs(metrics: Iterable[Metric], declared: Iterable[Argument] = ()) -> list[SecretKeyRef]:
    """Every secretKeyRef that arguments and provider auth name, each once, in order."""
    sources: list[SecretSource] = [a.value_from for a in declared if a.value_from is not None]
    for m in metrics:
        p = m.provider
        auth = p.prometheus.auth if p.prometheus else p.webhook.auth if p.webhook else None
        sources += _auth_sources(auth)
    seen: dict[tuple[str, str], SecretKeyRef] = {}
    for s in sources:
        if s.secret_key_ref is not None:
            seen.setdefault((s.secret_key_ref.name, s.secret_key_ref.key), s.secret_key_ref)
    return list(seen.values())


def _auth_sources(auth: HttpAuth | None) -> list[SecretSource]:
    if auth is None:
        return []
    if auth.bearer is not None:
        return [auth.bearer]
    assert auth.basic is not None
    return [auth.basic.username, auth.basic.password]
