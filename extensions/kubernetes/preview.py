"""What each Kubernetes activity would hit right now (``inoculate run --dry-run``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from kubernetes import client

from inoculate.extensions.kubernetes.cluster import REQUEST_TIMEOUT_S, connect
from inoculate.model.errors import FaultError
from inoculate.model.targets import Reach, reach_of

__all__ = ["PREVIEWS", "REACH"]


def _pods(arguments: Mapping[str, Any], configuration: Mapping[str, Any]) -> list[str]:
    ns, selector = str(arguments.get("ns", "default")), str(arguments.get("label_selector", ""))
    try:
        api, cluster = connect(None)
        pods = (
            client.CoreV1Api(api)
            .list_namespaced_pod(ns, label_selector=selector, _request_timeout=REQUEST_TIMEOUT_S)
            .items
        )
    except (FaultError, client.ApiException, OSError) as exc:
        return [f"cannot tell now: {exc}"]
    names = [f"pod {ns}/{p.metadata.name} at {cluster.api_server}" for p in pods]
    return names or [f"no pod matches {selector!r} in {ns} at {cluster.api_server}"]


def _deployment(arguments: Mapping[str, Any], configuration: Mapping[str, Any]) -> list[str]:
    return [f"deployment {arguments.get('ns', 'default')}/{arguments.get('name')}"]


PREVIEWS: Mapping[str, Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]]] = (
    MappingProxyType(
        {
            "kill_pods": _pods,
            "ensure_pods_ready": _pods,
            "deny_ingress": _pods,
            "scale_deployment": _deployment,
            "restore_replicas": _deployment,
        }
    )
)


def _matching_pods(arguments: Mapping[str, Any]) -> int | None:
    ns, selector = str(arguments.get("ns", "default")), str(arguments.get("label_selector", ""))
    try:
        api, _ = connect(None)
        return len(
            client.CoreV1Api(api)
            .list_namespaced_pod(ns, label_selector=selector, _request_timeout=REQUEST_TIMEOUT_S)
            .items
        )
    except (FaultError, client.ApiException, OSError):
        return None


def _pods_reach(arguments: Mapping[str, Any], configuration: Mapping[str, Any]) -> Reach:
    return reach_of(
        "kubernetes",
        _matching_pods(arguments),
        arguments.get("count"),
        arguments.get("percentage"),
        "pod",
    )


def _isolated_reach(arguments: Mapping[str, Any], configuration: Mapping[str, Any]) -> Reach:
    return reach_of("kubernetes", _matching_pods(arguments), what="pod")


def _scaled_reach(arguments: Mapping[str, Any], configuration: Mapping[str, Any]) -> Reach:
    """A scale-down takes away the replicas above ``replicas`` (pods of the deployment)."""
    ns, name = str(arguments.get("ns", "default")), str(arguments.get("name"))
    target = arguments.get("replicas")
    try:
        api, _ = connect(None)
        current = (
            client.AppsV1Api(api)
            .read_namespaced_deployment(name, ns, _request_timeout=REQUEST_TIMEOUT_S)
            .spec.replicas
        )
    except (FaultError, client.ApiException, OSError):
        return Reach("kubernetes", None, None, f"deployment {ns}/{name} cannot be read now")
    if not isinstance(target, int) or current is None:
        return Reach("kubernetes", None, None, f"deployment {ns}/{name}: replicas unknown")
    removed = max(0, current - target)
    percent = 100.0 * removed / current if current else 0.0
    why = f"scaling {ns}/{name} from {current} to {target} replicas"
    return Reach("kubernetes", removed, percent, why)


# Fault activity → the most it could hit now (a canary's blast radius).
REACH: Mapping[str, Callable[[Mapping[str, Any], Mapping[str, Any]], Reach]] = MappingProxyType(
    {"kill_pods": _pods_reach, "deny_ingress": _isolated_reach, "scale_deployment": _scaled_reach}
)
