"""Docker faults and probes: ``module: inoculate.extensions.docker`` in an experiment.

Actions: ``kill_containers``, ``stop_containers``, ``pause_containers``,
``restart_containers``, ``remove_containers``, ``disconnect_network``, ``squeeze_resources``;
rollbacks ``ensure_containers_running``, ``unpause_containers``, ``reconnect_network``,
``restore_resources``. Probes: ``containers_state``, ``containers_running``,
``containers_healthy``, ``restart_count``, ``wait_until_healthy``. See :mod:`.actions`.
"""

from inoculate.extensions.docker.actions import (
    disconnect_network,
    ensure_containers_running,
    kill_containers,
    pause_containers,
    reconnect_network,
    remove_containers,
    restart_containers,
    restore_resources,
    squeeze_resources,
    stop_containers,
    unpause_containers,
)
from inoculate.extensions.docker.probes import (
    containers_healthy,
    containers_running,
    containers_state,
    restart_count,
    wait_until_healthy,
)

__all__ = [
    "containers_healthy",
    "containers_running",
    "containers_state",
    "disconnect_network",
    "ensure_containers_running",
    "kill_containers",
    "pause_containers",
    "reconnect_network",
    "remove_containers",
    "restart_containers",
    "restart_count",
    "restore_resources",
    "squeeze_resources",
    "stop_containers",
    "unpause_containers",
    "wait_until_healthy",
]
