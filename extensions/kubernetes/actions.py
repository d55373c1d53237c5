"""Kubernetes faults with undo records: pod kill with a blast radius, scale-down, deny ingress.

Thin helpers around chaostoolkit-kubernetes (``chaosk8s``) for what it lacks:

- ``kill_pods``: a *seeded*, rounded-down percentage or a count of the pods matching a label
  selector (chaosk8s' ``terminate_pods`` rounds a percentage up and records no seed), and
  only pods run by a controller, deleted by uid so a replacement is never hit;
- ``scale_deployment``: chaosk8s' action, with the original replica count recorded first;
- ``deny_ingress``: a NetworkPolicy created through chaosk8s, uniquely named and tokened so
  its undo deletes exactly it.

Every fault writes its undo record to the fault ledger before it acts (see
``inoculate.faults.protocol``). The record holds the API server URL, the kubeconfig context name
and the namespace and names involved — never credentials: reverters connect through the
usual kubeconfig (or in-cluster) loading of chaosk8s, and refuse to act when that points at
another API server than the record's. So ``inoculate recover`` can undo a fault from the
ledger alone. Pods need no restoring (their controller recreates them): a pod kill's undo
waits until the owning deployments are ready again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from chaosk8s.deployment import actions as k8s_deployments
from chaosk8s.networking import actions as k8s_networking
from chaoslib.types import Configuration, Secrets
from kubernetes import client
from kubernetes.client.rest import ApiException

from inoculate.extensions.kubernetes.cluster import (
    MANAGED_BY,
    REQUEST_TIMEOUT_S,
    TOKEN_ANNOTATION,
    NotFound,
    api_error,
    connect,
    controller_of,
    delete_pods,
    desired_replicas,
    match_labels,
    owning_workloads,
    phase,
    translated,
    wait_ready,
)
from inoculate.extensions.kubernetes.reverters import FAMILY
from inoculate.faults.blast_radius import select
from inoculate.faults.protocol import inject, revert_matching
from inoculate.model.errors import BlastRadiusError, FaultError

__all__ = [
    "allow_ingress",
    "deny_ingress",
    "ensure_pods_ready",
    "kill_pods",
    "restore_replicas",
    "scale_deployment",
]


def kill_pods(
    label_selector: str,
    ns: str = "default",
    count: int | None = None,
    percentage: float | None = None,
    seed: int | None = None,
    grace_period_s: int | None = None,
    ready_timeout_s: float = 120.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Delete ``count`` pods, or ``percentage`` % of them (rounded down), matching the selector.

    Only running pods owned by a controller are candidates (a bare pod would never come
    back). The choice is random with a recorded ``seed`` (give one to replay a run). The
    undo waits until the pods' deployments are ready again (``ready_timeout_s``).
    """
    if not label_selector.strip():
        raise FaultError("label_selector must select the target pods, e.g. `app=catalog`")
    if count is None and percentage is None:
        # The shared selector reads "neither" as "all"; a pod kill must say how many.
        raise FaultError("give `count` or `percentage` (100 kills every matching pod)")
    api, cluster = connect(secrets)
    core = client.CoreV1Api(api)
    pods = core.list_namespaced_pod(
        ns, label_selector=label_selector, _request_timeout=REQUEST_TIMEOUT_S
    ).items
    live = sorted(
        (p for p in pods if p.metadata.deletion_timestamp is None and phase(p) == "Running"),
        key=lambda p: p.metadata.name,
    )
    owned = [p for p in live if controller_of(p.metadata) is not None]
    try:
        selection = select(
            owned, count=count, percentage=percentage, seed=seed, key=lambda p: p.metadata.name
        )
    except BlastRadiusError as exc:
        where = f"pods matching {label_selector!r} in namespace {ns!r}"
        raise FaultError(
            f"{where}: {exc} ({len(live)} live, {len(owned)} controller-owned)"
        ) from exc
    chosen = [{"name": p.metadata.name, "uid": p.metadata.uid} for p in selection.chosen]
    workloads = owning_workloads(api, ns, selection.chosen)
    undo = {
        **cluster.to_json(),
        "namespace": ns,
        "pods": chosen,
        "workloads": workloads,
        "ready_timeout_s": ready_timeout_s,
        "seed": selection.seed,
    }
    _, killed = inject(
        configuration,
        FAMILY,
        "kill_pods",
        {"api_server": cluster.api_server, "namespace": ns, "label_selector": label_selector},
        undo,
        act=lambda: delete_pods(core, ns, chosen, grace_period_s),
        description=f"kill {len(chosen)}/{len(owned)} pods {label_selector} in {ns}",
    )
    return {
        "namespace": ns,
        "label_selector": label_selector,
        "killed": killed,
        "candidates": len(owned),
        "skipped_unowned": [p.metadata.name for p in live if p not in owned],
        "seed": selection.seed,
        "workloads": workloads,
    }


def scale_deployment(
    name: str,
    replicas: int,
    ns: str = "default",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Scale a deployment to ``replicas`` (chaosk8s' action); the undo restores the original
    replica count, recorded before scaling."""
    if replicas < 0:
        raise FaultError(f"replicas must be 0 or more, got {replicas}")
    api, cluster = connect(secrets)
    apps = client.AppsV1Api(api)
    try:
        current = apps.read_namespaced_deployment(name, ns, _request_timeout=REQUEST_TIMEOUT_S)
    except ApiException as exc:
        raise FaultError(f"deployment {ns}/{name}: {api_error(exc)}") from exc
    original = desired_replicas(current.spec)
    undo = {**cluster.to_json(), "namespace": ns, "deployment": name, "replicas": original}
    inject(
        configuration,
        FAMILY,
        "scale_deployment",
        {"api_server": cluster.api_server, "namespace": ns, "deployment": name},
        undo,
        act=translated(
            f"scaling deployment {ns}/{name}",
            lambda: k8s_deployments.scale_deployment(name, replicas, ns=ns, secrets=secrets),
        ),
        description=f"scale deployment {ns}/{name} from {original} to {replicas}",
    )
    return {"namespace": ns, "deployment": name, "replicas": replicas, "original": original}


def deny_ingress(
    label_selector: str,
    ns: str = "default",
    name: str | None = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Create a NetworkPolicy denying all ingress to the pods matching ``label_selector``
    (``key=value`` pairs). The undo deletes exactly this policy (matched by a token).

    It takes effect only where the cluster's network plugin enforces NetworkPolicies.
    """
    labels = match_labels(label_selector)
    policy = name or f"inoculate-deny-ingress-{uuid.uuid4().hex[:8]}"
    token = uuid.uuid4().hex
    spec = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": policy,
            "labels": {MANAGED_BY[0]: MANAGED_BY[1]},
            "annotations": {TOKEN_ANNOTATION: token},
        },
        "spec": {"podSelector": {"matchLabels": labels}, "policyTypes": ["Ingress"], "ingress": []},
    }
    _, cluster = connect(secrets)
    undo = {**cluster.to_json(), "namespace": ns, "policy": policy, "token": token}
    inject(
        configuration,
        FAMILY,
        "deny_ingress",
        {"api_server": cluster.api_server, "namespace": ns, "label_selector": label_selector},
        undo,
        act=translated(
            f"creating NetworkPolicy {ns}/{policy}",
            lambda: k8s_networking.create_network_policy(spec=spec, ns=ns, secrets=secrets),
        ),
        description=f"deny ingress to {label_selector} in {ns} (NetworkPolicy {policy})",
    )
    return {"namespace": ns, "policy": policy, "pod_selector": labels}


# --- rollbacks ---


def ensure_pods_ready(
    label_selector: str,
    ns: str = "default",
    timeout_s: float = 120.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Rollback of ``kill_pods``: wait until the deployments of the killed pods (and of the
    pods matching now) are ready again, and settle the kill records of this selector."""
    outcomes = _revert_matching(
        configuration,
        "kill_pods",
        lambda t: t.get("namespace") == ns and t.get("label_selector") == label_selector,
    )
    api, _ = connect(secrets)
    core = client.CoreV1Api(api)
    pods = core.list_namespaced_pod(
        ns, label_selector=label_selector, _request_timeout=REQUEST_TIMEOUT_S
    ).items
    waited = []
    for workload in owning_workloads(api, ns, pods):
        if workload["kind"] == "Deployment":
            try:
                waited.append(wait_ready(api, ns, workload["name"], timeout_s))
            except NotFound:
                continue  # deleted meanwhile: nothing to wait for
    return {"reverted": outcomes, "deployments": waited}


def restore_replicas(
    name: str,
    ns: str = "default",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Rollback of ``scale_deployment``: restore the recorded replica count of the deployment."""
    outcomes = _revert_matching(
        configuration,
        "scale_deployment",
        lambda t: t.get("namespace") == ns and t.get("deployment") == name,
    )
    return {"namespace": ns, "deployment": name, "reverted": outcomes}


def allow_ingress(
    ns: str = "default",
    label_selector: str | None = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Rollback of ``deny_ingress``: delete the policies it created in ``ns`` (only those of
    ``label_selector`` when given)."""
    outcomes = _revert_matching(
        configuration,
        "deny_ingress",
        lambda t: (
            t.get("namespace") == ns
            and (label_selector is None or t.get("label_selector") == label_selector)
        ),
    )
    return {"namespace": ns, "reverted": outcomes}


def _revert_matching(
    configuration: Configuration, fault: str, matches: Callable[[Mapping[str, Any]], bool]
) -> list[dict[str, Any]]:
    outcomes = revert_matching(
        configuration, lambda r: r.family == FAMILY and r.fault == fault and matches(r.target)
    )
    return [o.to_json() for o in outcomes]
