"""Kubernetes probes: deployment readiness, counted from the status and the live pods."""

from __future__ import annotations

from typing import Any

from chaoslib.types import Secrets

from inoculate.extensions.kubernetes.cluster import connect, readiness, wait_ready

__all__ = ["deployment_ready", "wait_deployment_ready"]


def deployment_ready(name: str, ns: str = "default", secrets: Secrets = None) -> dict[str, Any]:
    """Probe: whether every desired replica of the deployment is updated, ready and
    available, counted from its status *and* from its live pods:
    ``{met, replicas, ready_pods, ready_replicas, available_replicas, updated_replicas}``."""
    api, _ = connect(secrets)
    return readiness(api, ns, name)


def wait_deployment_ready(
    name: str, ns: str = "default", timeout_s: float = 120.0, secrets: Secrets = None
) -> dict[str, Any]:
    """Wait until :func:`deployment_ready` is met; fail after ``timeout_s`` seconds."""
    api, _ = connect(secrets)
    return wait_ready(api, ns, name, timeout_s)
