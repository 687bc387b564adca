"""Template arguments: resolve them (given values, defaults, secrets) and substitute `{{args.NAME}}`
into the text of queries, URLs, bodies, headers and commands.

Values read from secrets are remembered so that messages shown to users can be redacted: a
measurement's message may quote a URL or a command line, and a token must not end up in a status."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from rollwise.spec.analysis import Argument, SecretKeyRef, SecretSource

ARG_REF = re.compile(r"\{\{\s*args\.([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}")
_REDACTED = "******"


class ArgumentError(ValueError):
    """An argument is missing, has no value, or names a secret that cannot be read."""


class SecretResolver(Protocol):
    """Reads a Secret's key for a `secretKeyRef`, or raises ArgumentError naming the Secret and the
    key. Each platform has its own (rollwise.analysis.secrets)."""

    def read(self, ref: SecretKeyRef) -> str: ...


class Args(Mapping[str, str]):
    """Resolved argument values, knowing which of them are secret."""

    def __init__(self, values: Mapping[str, str], secret_names: frozenset[str] = frozenset()) -> None:
        self._values = dict(values)
        self.secret_names = secret_names

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        shown = {k: (_REDACTED if k in self.secret_names else v) for k, v in self._values.items()}
        return f"Args({shown!r})"


def secret_value(
    source: SecretSource, env: Mapping[str, str], secrets: SecretResolver | None = None, *, what: str = "a secret"
) -> str:
    if source.from_env is not None:
        value = env.get(source.from_env)
        if value is None:
            raise ArgumentError(f"{what} is read from the environment variable {source.from_env}, which is not set")
        return value
    ref = source.secret_key_ref
    assert ref is not None  # the model requires exactly one of the two
    if secrets is None:
        raise ArgumentError(
            f"{what} is read from Secret {ref.name!r} key {ref.key!r}, but no Secrets can be read here "
            "(the local control plane reads them from <state dir>/secrets/<name>/<key>; Kubernetes from the API)"
        )
    return secrets.read(ref)


def resolve_args(
    declared: Sequence[Argument] | None,
    given: Mapping[str, str | None] | None = None,
    *,
    env: Mapping[str, str],
    secrets: SecretResolver | None = None,
) -> Args:
    """The values of a template's arguments: a value given by the rollout wins over the template's
    default; a `valueFrom` secret is read now. A declared argument left without any value is an
    error here rather than a `{{args.x}}` left in a query."""
    given = dict(given or {})
    values: dict[str, str] = {}
    secret_names: set[str] = set()
    for arg in declared or []:
        if arg.name in given:
            value = given.pop(arg.name)
            if value is None:
                raise ArgumentError(
                    f"argument {arg.name!r} has no value: the rollout's valueFrom.fieldRef names an unset field"
                )
            values[arg.name] = value
        elif arg.value is not None:
            values[arg.name] = arg.value
        elif arg.value_from is not None:
            values[arg.name] = secret_value(arg.value_from, env, secrets, what=f"argument {arg.name!r}")
            secret_names.add(arg.name)
        else:
            raise ArgumentError(f"argument {arg.name!r} has no value: give it in the rollout's analysis args")
    # Values given for arguments the template does not declare are kept: lint reports them, and
    # a run must not fail over a harmless extra.
    for name, value in given.items():
        if value is not None:
            values[name] = value
    return Args(values, frozenset(secret_names))


def substitute(text: str, args: Mapping[str, str], *, where: str) -> str:
    """`text` with every `{{args.NAME}}` replaced; an unknown NAME is an error naming `where`."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in args:
            known = ", ".join(sorted(args)) or "none"
            raise ArgumentError(
                f"{where} uses {{{{args.{name}}}}}, but no argument {name!r} was given (given: {known})"
            )
        return args[name]

    return ARG_REF.sub(replace, text)


def redact(text: str, args: Mapping[str, str]) -> str:
    """`text` with the values of secret arguments blanked out."""
    if not isinstance(args, Args):
        return text
    for name in args.secret_names:
        value = args[name]
        if value:
            text = text.replace(value, _REDACTED)
    return text
