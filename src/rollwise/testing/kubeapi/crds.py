"""The CRDs the emulator serves: Rollwise's own (generated from the models) and the upstream Istio
and Gateway API ones kept in the shared folder beside the repository (`../shared/crds`)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from rollwise.testing.kubeapi.util import json_copy

SHARED_CRD_FILES = (
    "networking.istio.io_virtualservices.yaml",
    "networking.istio.io_destinationrules.yaml",
    "gateway.networking.k8s.io_httproutes.yaml",
)


def rollwise_crds() -> list[dict[str, Any]]:
    """Rollwise's CRDs, generated once per process (generation takes ~0.1 s) and copied per call."""
    return json_copy(list(_rollwise_crds()))


@lru_cache(maxsize=1)
def _rollwise_crds() -> tuple[dict[str, Any], ...]:
    from rollwise.spec.crd import all_crds

    return tuple(all_crds())


def find_shared_crds(repo_root: Path) -> Path | None:
    """`$ROLLWISE_SHARED_CRDS`, else `<repo>/../shared/crds` (where CI puts shared/), else
    `<repo>/shared/crds`; None when none of them has the files."""
    candidates = []
    if os.environ.get("ROLLWISE_SHARED_CRDS"):
        candidates.append(Path(os.environ["ROLLWISE_SHARED_CRDS"]))
    candidates += [repo_root.parent / "shared" / "crds", repo_root / "shared" / "crds"]
    for path in candidates:
        if all((path / name).is_file() for name in SHARED_CRD_FILES):
            return path
    return None


@lru_cache(maxsize=16)
def _load(path: str) -> tuple[dict[str, Any], ...]:
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.load_all(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) if d]
    return tuple(d for d in docs if d.get("kind") == "CustomResourceDefinition")


def load_crd_file(path: Path) -> list[dict[str, Any]]:
    return json_copy(list(_load(str(path))))


def shared_crd_files(directory: Path) -> list[dict[str, Any]]:
    return [crd for name in SHARED_CRD_FILES for crd in load_crd_file(directory / name)]


def standard_crds(shared: Path | None) -> list[dict[str, Any]]:
    """Rollwise's CRDs, plus Istio VirtualService/DestinationRule and Gateway API HTTPRoute when
    `shared` (the directory with the upstream CRD files) is given."""
    return rollwise_crds() + (shared_crd_files(shared) if shared is not None else [])
