"""Undoing Kubernetes faults from their ledger record alone (rollbacks and ``inoculate recover``).

Registered as the ``kubernetes`` fault family (entry-point group ``inoculate.faults``). A
reverter refuses to act when the configuration points at another API server than the one
the record names.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from kubernetes import client
from kubernetes.client.rest import ApiException

from inoculate.extensions.kubernetes.cluster import (
    REQUEST_TIMEOUT_S,
    TOKEN_ANNOTATION,
    NotFound,
    api_error,
    connect_recorded,
    wait_ready,
)
from inoculate.faults.ledger import LedgerRecord
from inoculate.faults.protocol import Reverter
from inoculate.model.errors import FaultError

__all__ = ["FAMILY", "REVERTERS"]

FAMILY = "kubernetes"


def _revert_kill_pods(record: LedgerRecord) -> str:
    api = connect_recorded(record)
    ns = str(record.undo["namespace"])
    timeout_s = float(record.undo.get("ready_timeout_s", 120.0))
    done = []
    for workload in record.undo.get("workloads", []):
        if workload["kind"] != "Deployment":
            done.append(f"{workload['kind']} {workload['name']} not waited for")
            continue
        try:
            state = wait_ready(api, ns, workload["name"], timeout_s)
        except NotFound:
            done.append(f"deployment {workload['name']} no longer exists")
            continue
        done.append(f"deployment {workload['name']} ready ({state['ready_pods']} pods)")
    return "; ".join(done) or "no controller to wait for"


def _revert_scale(record: LedgerRecord) -> str:
    apps = client.AppsV1Api(connect_recorded(record))
    ns, name = str(record.undo["namespace"]), str(record.undo["deployment"])
    replicas = int(record.undo["replicas"])
    try:
        apps.patch_namespaced_deployment(
            name, ns, {"spec": {"replicas": replicas}}, _request_timeout=REQUEST_TIMEOUT_S
        )
    except ApiException as exc:
        if exc.status == 404:
            return f"deployment {ns}/{name} no longer exists; nothing to restore"
        raise FaultError(f"restoring {ns}/{name}: {api_error(exc)}") from exc
    return f"deployment {ns}/{name} scaled back to {replicas}"


def _revert_deny_ingress(record: LedgerRecord) -> str:
    net = client.NetworkingV1Api(connect_recorded(record))
    ns, policy = str(record.undo["namespace"]), str(record.undo["policy"])
    try:
        found = net.read_namespaced_network_policy(policy, ns, _request_timeout=REQUEST_TIMEOUT_S)
    except ApiException as exc:
        if exc.status == 404:
            return f"NetworkPolicy {ns}/{policy} already gone"
        raise FaultError(f"reading NetworkPolicy {ns}/{policy}: {api_error(exc)}") from exc
    if (found.metadata.annotations or {}).get(TOKEN_ANNOTATION) != record.undo["token"]:
        # Same name, not ours (the create failed on an existing policy): leave it alone.
        return f"NetworkPolicy {ns}/{policy} was not created by this fault; left in place"
    options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=found.metadata.uid))
    try:
        net.delete_namespaced_network_policy(
            policy, ns, body=options, _request_timeout=REQUEST_TIMEOUT_S
        )
    except ApiException as exc:
        if exc.status != 404:
            raise FaultError(f"deleting NetworkPolicy {ns}/{policy}: {api_error(exc)}") from exc
    return f"NetworkPolicy {ns}/{policy} deleted"


REVERTERS: Mapping[str, Reverter] = MappingProxyType(
    {
        "kill_pods": _revert_kill_pods,
        "scale_deployment": _revert_scale,
        "deny_ingress": _revert_deny_ingress,
    }
)
