"""What a rollout naming a FlagSet (`spec.featureFlags`) adds to its replicas on the local
platform: the path of the flags file in `fileEnv`, and the FlagSet's `env` variables.

The file is re-read by running replicas, so its contents are not part of the revision. The env
variables are read at process start only, so their values (with the file's location) are a
config hash of the revision: changing them makes a new revision, which the rollout's strategy
rolls out like any other change. Each revision keeps the values it was made with."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

from rollwise.engine import Observed
from rollwise.flags.env import env_of
from rollwise.platforms.local.daemon.flags_files import flags_file
from rollwise.platforms.local.store import Store
from rollwise.spec.flags import FlagSet
from rollwise.spec.rollout import Rollout
from rollwise.spec.workload import ProcessTemplate


def replica_env(store: Store, state_dir: Path, rollout: Rollout) -> dict[str, str]:
    ref = rollout.spec.feature_flags
    if ref is None:
        return {}
    namespace = rollout.metadata.namespace or "default"
    env: dict[str, str] = {}
    record = store.get_resource("FlagSet", namespace, ref.flag_set)
    if record is not None:
        env.update(env_of(FlagSet.model_validate(record.document)))
    env[ref.file_env] = str(flags_file(state_dir, namespace, ref.flag_set))
    return env


def with_config(observed: Observed, store: Store, state_dir: Path, rollout: Rollout) -> Observed:
    ref = rollout.spec.feature_flags
    if ref is None:
        return observed
    text = json.dumps(replica_env(store, state_dir, rollout), sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return replace(observed, config_hashes={**observed.config_hashes, f"FlagSet/{ref.flag_set}": digest})


def with_flags(process: ProcessTemplate, store: Store, state_dir: Path, rollout: Rollout) -> ProcessTemplate:
    env = replica_env(store, state_dir, rollout)
    if not env:
        return process
    # The template's own variables win: a user who sets the variable means it.
    return process.model_copy(update={"env": {**env, **(process.env or {})}})
