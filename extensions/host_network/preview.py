"""What each host network activity would hit (``inoculate run --dry-run``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from inoculate.model.targets import Reach

__all__ = ["PREVIEWS", "REACH"]


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


def _partition_reach(arguments: Mapping[str, Any], configuration: Mapping[str, Any]) -> Reach:
    host, port = arguments.get("host", "127.0.0.1"), arguments.get("port")
    return Reach("host_network", 1, 100.0, f"all traffic to and from {host}:{port}")


def _netem_reach(arguments: Mapping[str, Any], configuration: Mapping[str, Any]) -> Reach:
    loss = arguments.get("loss_percent", 0.0)
    delayed = bool(arguments.get("delay_ms") or arguments.get("jitter_ms"))
    share = 100.0 if delayed else float(loss or 0)
    device = arguments.get("device", "lo")
    return Reach("host_network", 1, share, f"{share:g} % of the packets leaving {device}")


# Fault activity → the most it could hit (a canary's blast radius): one host:port or device.
REACH: Mapping[str, Callable[[Mapping[str, Any], Mapping[str, Any]], Reach]] = MappingProxyType(
    {"partition": _partition_reach, "add_netem": _netem_reach}
)
