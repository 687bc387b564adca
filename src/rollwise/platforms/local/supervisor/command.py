"""How a replica is launched: its environment, its argv with `$(NAME)` references expanded from
that environment (Kubernetes' rules), and the free port it listens on."""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Collection, Mapping
from pathlib import Path

from rollwise.spec.workload import ProcessTemplate

_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(arg: str, env: Mapping[str, str]) -> str:
    """`$(NAME)` becomes env[NAME]; `$$` is a literal `$` (so `$$(NAME)` stays as written); a
    reference to an unset name is left unchanged, so a typo shows up verbatim instead of vanishing."""

    def replace(m: re.Match[str]) -> str:
        name = m.group(1)
        if name is None:
            return "$"
        return env.get(name, m.group(0))

    return _REFERENCE.sub(replace, arg)


def replica_env(
    template: ProcessTemplate,
    extra_env: Mapping[str, str],
    *,
    rollout: str,
    revision: str,
    index: int,
    port: int,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The control plane's environment, then the template's, then the caller's extras, then ours:
    the port and identity variables are the platform's contract, so nothing overrides them."""
    env = dict(os.environ if base is None else base)
    env.update(template.env or {})
    env.update(extra_env)
    env[template.port_env] = str(port)
    env["ROLLWISE_ROLLOUT"] = rollout
    env["ROLLWISE_REVISION"] = revision
    env["ROLLWISE_REPLICA"] = str(index)
    # Console scripts installed beside Rollwise (rollwise-demo) must be found even when the
    # control plane was started by path, without its virtualenv on PATH.
    bin_dir = str(Path(sys.executable).parent)
    path = env.get("PATH") or os.defpath
    if path.split(os.pathsep)[0] != bin_dir:
        env["PATH"] = bin_dir + os.pathsep + path
    return env


def argv(template: ProcessTemplate, env: Mapping[str, str]) -> list[str]:
    return [expand(arg, env) for arg in template.command]


def free_port(avoid: Collection[int] = ()) -> int:
    """A port on 127.0.0.1 nobody listens on now. Another process may still take it before the
    replica binds; the replica then fails, is restarted, and gets another port."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in avoid:
            return port
    raise OSError("no free port on 127.0.0.1")
