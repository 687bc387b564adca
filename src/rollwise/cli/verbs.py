"""Every verb that works on both platforms, as one command each (platform.py has the rule that
picks the platform): the local verb's options, the Kubernetes options, and the cluster side."""

from __future__ import annotations

import typer

from rollwise.cli import apply, commands, get, history, kube_apply, kube_verbs, logs, setters, status, up
from rollwise.cli.platform import both, cluster_only

apply_ = both(apply.apply, kube_apply.apply_to_cluster, [kube_verbs.FORCE_CONFLICTS_OPTION])
get_ = both(get.get, kube_verbs.get)
list_ = both(get.list_rollouts, kube_verbs.list_rollouts, [kube_verbs.ALL_NAMESPACES_OPTION])
status_ = both(status.status, kube_verbs.status)
history_ = both(history.history, kube_verbs.history_of)
logs_ = both(logs.logs, kube_verbs.logs)
up_ = both(up.up, kube_verbs.not_on_cluster)
down_ = both(up.down, kube_verbs.not_on_cluster)
promote = both(commands.promote, kube_verbs.promote, [kube_verbs.WAIT_OPTION])
abort = both(commands.abort, kube_verbs.abort, [kube_verbs.WAIT_OPTION])
retry = both(commands.retry, kube_verbs.retry, [kube_verbs.WAIT_OPTION])
pause = both(commands.pause, kube_verbs.pause, [kube_verbs.WAIT_OPTION])
resume = both(commands.resume, kube_verbs.resume, [kube_verbs.WAIT_OPTION])
undo = both(commands.undo, kube_verbs.undo, [kube_verbs.WAIT_OPTION])
set_command = both(setters.set_command, kube_verbs.set_command, [kube_verbs.CONTAINER_OPTION])
set_env = both(setters.set_env, kube_verbs.set_env, [kube_verbs.CONTAINER_OPTION])
set_image = cluster_only(
    kube_verbs.set_image, "set image changes a Kubernetes pod template; locally use `rollwise set command`"
)

set_app = typer.Typer(
    help="Change a rollout's template (a new revision): its process locally, its pod template on Kubernetes.",
    no_args_is_help=True,
)
set_app.command("command")(set_command)
set_app.command("env")(set_env)
set_app.command("image")(set_image)
