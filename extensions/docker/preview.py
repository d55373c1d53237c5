"""What each Docker activity would hit right now (``inoculate run --dry-run``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from inoculate.extensions.docker.engine import Selector, docker_host, find_containers, open_client
from inoculate.model.errors import EmbeddedSystemError, FaultError
from inoculate.model.targets import Reach, reach_of

__all__ = ["PREVIEWS", "REACH"]


def _selector(arguments: Mapping[str, Any], configuration: Mapping[str, Any]) -> Selector:
    """The activity's container selector (raises EmbeddedSystemError for a service of an
    embedded system that is not running yet)."""
    return Selector.from_arguments(
        arguments.get("name"),
        arguments.get("label"),
        arguments.get("pattern"),
        arguments.get("service"),
        configuration,
    )


def _containers(arguments: Mapping[str, Any], configuration: Mapping[str, Any]) -> list[str]:
    try:
        selector = _selector(arguments, configuration)
    except EmbeddedSystemError:
        return [f"service {arguments.get('service')} of the embedded system (started by the run)"]
    try:
        with open_client(docker_host(configuration)) as client:
            found = find_containers(client, selector)
    except FaultError as exc:
        return [f"cannot tell now: {exc}"]
    names = [f"container {ref.name}" for ref in found] or ["no container matches now"]
    radius = arguments.get("count") or arguments.get("percentage")
    if radius and found:
        unit = "" if arguments.get("count") else " %"
        names.append(f"(a blast radius of {radius}{unit} picks among these at random)")
    return names


_ACTIVITIES = (
    "kill_containers", "stop_containers", "pause_containers", "restart_containers",
    "remove_containers", "disconnect_network", "squeeze_resources",
    "ensure_containers_running", "unpause_containers", "reconnect_network", "restore_resources",
)  # fmt: skip
PREVIEWS: Mapping[str, Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]]] = (
    MappingProxyType(dict.fromkeys(_ACTIVITIES, _containers))
)


def _reach(arguments: Mapping[str, Any], configuration: Mapping[str, Any]) -> Reach:
    """The most containers the fault could hit: its blast radius over what matches now."""
    try:
        selector = _selector(arguments, configuration)
        with open_client(docker_host(configuration)) as client:
            matched: int | None = len(find_containers(client, selector))
    except (EmbeddedSystemError, FaultError):
        matched = None
    return reach_of(
        "docker", matched, arguments.get("count"), arguments.get("percentage"), "container"
    )


_FAULTS = (
    "kill_containers", "stop_containers", "pause_containers", "restart_containers",
    "remove_containers", "disconnect_network", "squeeze_resources",
)  # fmt: skip
# Fault activity → the most it could hit now (a canary's blast radius; undo activities hit
# only what a fault did).
REACH: Mapping[str, Callable[[Mapping[str, Any], Mapping[str, Any]], Reach]] = MappingProxyType(
    dict.fromkeys(_FAULTS, _reach)
)
