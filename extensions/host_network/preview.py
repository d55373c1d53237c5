"""What each host network activity would hit (``inoculate run --dry-run``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["PREVIEWS"]


def _partition(arguments: Mapping[str, Any], configuration: Mapping[str, Any]) -> list[str]:
    host, port = arguments.get("host", "127.0.0.1"), arguments.get("port")
    action = arguments.get("action", "drop")
    return [f"all traffic to and from {host}:{port} on this host ({action}, iptables)"]


def _netem(arguments: Mapping[str, Any], configuration: Mapping[str, Any]) -> list[str]:
    return [f"every packet leaving device {arguments.get('device', 'lo')} (tc netem)"]


PREVIEWS: Mapping[str, Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]]] = (
    MappingProxyType(
        {
            "partition": _partition,
            "heal_partition": _partition,
            "add_netem": _netem,
            "remove_netem": _netem,
        }
    )
)
