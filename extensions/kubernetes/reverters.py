"""Undoing Kubernetes faults from their ledger record alone (rollbacks and ``inoculate recover``).

Registered as the ``kubernetes`` fault family (entry-point group ``inoculate.faults``). A
reverter refuses to act when the configuration points at another API server than the one
the record names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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

__all__ = ["FAMILY", "REVERTERS", "VERIFIERS"]

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


def _scale_restored(record: LedgerRecord) -> tuple[bool | None, str]:
    apps = client.AppsV1Api(connect_recorded(record))
    ns, name = str(record.undo["namespace"]), str(record.undo["deployment"])
    try:
        found = apps.read_namespaced_deployment(name, ns, _request_timeout=REQUEST_TIMEOUT_S)
    except ApiException as exc:
        if exc.status == 404:
            return None, f"deployment {ns}/{name} no longer exists"
        raise FaultError(f"reading deployment {ns}/{name}: {api_error(exc)}") from exc
    wanted, now = int(record.undo["replicas"]), int(found.spec.replicas or 0)
    if now != wanted:
        return False, f"deployment {ns}/{name} has {now} replicas, not {wanted}"
    return True, f"deployment {ns}/{name} back to {wanted} replicas"


def _policy_restored(record: LedgerRecord) -> tuple[bool | None, str]:
    net = client.NetworkingV1Api(connect_recorded(record))
    ns, policy = str(record.undo["namespace"]), str(record.undo["policy"])
    try:
        found = net.read_namespaced_network_policy(policy, ns, _request_timeout=REQUEST_TIMEOUT_S)
    except ApiException as exc:
        if exc.status == 404:
            return True, f"NetworkPolicy {ns}/{policy} gone"
        raise FaultError(f"reading NetworkPolicy {ns}/{policy}: {api_error(exc)}") from exc
    if (found.metadata.annotations or {}).get(TOKEN_ANNOTATION) != record.undo["token"]:
        return True, f"NetworkPolicy {ns}/{policy} is not this fault's"
    return False, f"NetworkPolicy {ns}/{policy} still denies ingress"


# After the rollbacks, each fault's target is checked (inoculate.faults.kinds); a pod kill's
# revert already waits until its deployments are ready again.
VERIFIERS: Mapping[str, Callable[[LedgerRecord], tuple[bool | None, str]]] = MappingProxyType(
    {"scale_deployment": _scale_restored, "deny_ingress": _policy_restored}
)
