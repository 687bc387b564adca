"""Evaluating flags the way an application does: the OpenFeature SDK with the flagd provider in
in-process file mode, reading a flagd document from a file. Each evaluator has its own SDK
domain, so several documents can be evaluated side by side."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext

_domains = itertools.count()


class Evaluator:
    def __init__(self, path: Path) -> None:
        self.domain = f"test-{next(_domains)}"
        self.provider = FlagdProvider(resolver_type=ResolverType.FILE, offline_flag_source_path=str(path))
        # Evaluations before the provider is ready answer the default: wait for it.
        api.set_provider_and_wait(self.provider, domain=self.domain)
        self.client: OpenFeatureClient = api.get_client(self.domain)

    @classmethod
    def of(cls, document: dict[str, Any], path: Path) -> Evaluator:
        path.write_text(json.dumps(document))
        return cls(path)

    def boolean(self, flag: str, user: str | None = None, default: bool = False) -> bool:
        ctx = EvaluationContext(targeting_key=user) if user is not None else None
        return self.client.get_boolean_value(flag, default, ctx)

    def string(self, flag: str, user: str | None = None, default: str = "") -> str:
        ctx = EvaluationContext(targeting_key=user) if user is not None else None
        return self.client.get_string_value(flag, default, ctx)

    def share_on(self, flag: str, users: list[str]) -> float:
        return sum(self.boolean(flag, u) for u in users) / len(users)

    def close(self) -> None:
        self.provider.shutdown()

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


USERS = [f"user-{i}" for i in range(4000)]
