"""What each Kubernetes activity would hit right now (``inoculate run --dry-run``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from kubernetes import client

from inoculate.extensions.kubernetes.cluster import REQUEST_TIMEOUT_S, connect
from inoculate.model.errors import FaultError

__all__ = ["PREVIEWS"]


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
