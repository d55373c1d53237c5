"""Kubernetes faults with undo records: ``module: inoculate.extensions.kubernetes``.

Actions: ``kill_pods``, ``scale_deployment``, ``deny_ingress``; rollbacks
``ensure_pods_ready``, ``restore_replicas``, ``allow_ingress``. Probes: ``deployment_ready``,
``wait_deployment_ready``. Built on chaostoolkit-kubernetes; see :mod:`.actions`.
"""

from inoculate.extensions.kubernetes.actions import (
    allow_ingress,
    deny_ingress,
    ensure_pods_ready,
    kill_pods,
    restore_replicas,
    scale_deployment,
)
from inoculate.extensions.kubernetes.probes import deployment_ready, wait_deployment_ready

__all__ = [
    "allow_ingress",
    "deny_ingress",
    "deployment_ready",
    "ensure_pods_ready",
    "kill_pods",
    "restore_replicas",
    "scale_deployment",
    "wait_deployment_ready",
]
