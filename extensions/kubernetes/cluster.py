"""Talking to the Kubernetes API for the faults: connection, pods, workloads and readiness.

Connections go through chaosk8s' own loader (kubeconfig and ``KUBERNETES_CONTEXT``,
in-cluster, or the ``KUBERNETES_*`` environment), so our helpers and chaosk8s' activities
always talk to the same cluster. Every call is bounded by :data:`REQUEST_TIMEOUT_S`, and API
errors become :class:`~inoculate.model.errors.FaultError` saying what failed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from chaosk8s import create_k8s_api_client, get_config_path, has_local_config_file
from chaoslib.types import Secrets
from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.rest import ApiException

from inoculate.faults.ledger import LedgerRecord
from inoculate.model.errors import FaultError

MANAGED_BY = ("app.kubernetes.io/managed-by", "inoculate")
TOKEN_ANNOTATION = "inoculate.dev/fault-token"
REQUEST_TIMEOUT_S = 10  # every API call is bounded: a hung API server fails the activity
POLL_S = 0.25


@dataclass(frozen=True)
class Cluster:
    """Which API server an activity talked to (what a ledger record needs to find it again)."""

    api_server: str
    context: str | None

    def to_json(self) -> dict[str, Any]:
        """The cluster as recorded in the ledger."""
        return {"api_server": self.api_server, "context": self.context}


def connect(secrets: Secrets = None) -> tuple[client.ApiClient, Cluster]:
    """Connect with chaosk8s' loader; return the client and which cluster it reached."""
    # chaosk8s' own loader (kubeconfig and KUBERNETES_CONTEXT, in-cluster, or KUBERNETES_HOST
    # environment), so our helpers and chaosk8s' activities always talk to the same cluster.
    try:
        api = create_k8s_api_client(secrets)
    except (kube_config.ConfigException, OSError) as exc:
        raise FaultError(f"cannot load the Kubernetes configuration: {exc}") from exc
    return api, Cluster(str(api.configuration.host), _context_name(secrets))


def _context_name(secrets: Secrets) -> str | None:
    named = (secrets or {}).get("KUBERNETES_CONTEXT") or os.environ.get("KUBERNETES_CONTEXT")
    if named or not has_local_config_file():
        return named or None
    try:
        _, active = kube_config.list_kube_config_contexts(config_file=get_config_path())
    except kube_config.ConfigException:
        return None
    return str(active["name"]) if active else None


def connect_recorded(record: LedgerRecord) -> client.ApiClient:
    """Connect to the cluster a record names; refuse another API server."""
    context = record.undo.get("context")
    api, cluster = connect({"KUBERNETES_CONTEXT": context} if context else None)
    if cluster.api_server != record.undo.get("api_server"):
        raise FaultError(
            f"this fault was injected through {record.undo.get('api_server')} but the "
            f"Kubernetes configuration now points at {cluster.api_server}; set KUBECONFIG "
            "(and KUBERNETES_CONTEXT) to the original cluster and run `inoculate recover` again"
        )
    return api


class NotFound(Exception):
    """The object an API call named does not exist (any more)."""


def delete_pods(
    core: client.CoreV1Api, ns: str, pods: list[dict[str, str]], grace_period_s: int | None
) -> list[str]:
    """See the module docstring."""
    deleted = []
    for pod in pods:
        # The uid precondition makes sure a same-named replacement is never deleted.
        options = client.V1DeleteOptions(
            grace_period_seconds=grace_period_s,
            preconditions=client.V1Preconditions(uid=pod["uid"]),
        )
        try:
            core.delete_namespaced_pod(
                pod["name"], ns, body=options, _request_timeout=REQUEST_TIMEOUT_S
            )
        except ApiException as exc:
            if exc.status in (404, 409):  # already gone, or replaced meanwhile
                continue
            raise FaultError(f"deleting pod {ns}/{pod['name']}: {api_error(exc)}") from exc
        deleted.append(pod["name"])
    if pods and not deleted:
        raise FaultError("every selected pod was gone before it could be deleted")
    return deleted


def controller_of(metadata: Any) -> Any:
    """The controller owning an object (its ownerReference), or None."""
    return next((o for o in metadata.owner_references or [] if o.controller), None)


def owning_workloads(api: client.ApiClient, ns: str, pods: Iterable[Any]) -> list[dict[str, str]]:
    """The top-level controllers of the pods: a ReplicaSet's Deployment, else the owner."""
    apps = client.AppsV1Api(api)
    found: set[tuple[str, str]] = set()
    replica_sets: dict[str, tuple[str, str]] = {}
    for pod in pods:
        owner = controller_of(pod.metadata)
        if owner is None:
            continue
        if owner.kind == "ReplicaSet":
            if owner.name not in replica_sets:
                replica_sets[owner.name] = _replica_set_owner(apps, ns, owner.name)
            found.add(replica_sets[owner.name])
        else:
            found.add((owner.kind, owner.name))
    return [{"kind": kind, "name": name} for kind, name in sorted(found)]


def _replica_set_owner(apps: client.AppsV1Api, ns: str, name: str) -> tuple[str, str]:
    try:
        rs = apps.read_namespaced_replica_set(name, ns, _request_timeout=REQUEST_TIMEOUT_S)
    except ApiException as exc:
        if exc.status == 404:  # deleted meanwhile (a rollout): it is its own workload
            return ("ReplicaSet", name)
        raise FaultError(f"replica set {ns}/{name}: {api_error(exc)}") from exc
    top = controller_of(rs.metadata)
    return (str(top.kind), str(top.name)) if top else ("ReplicaSet", name)


def readiness(api: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    """See the module docstring."""
    try:
        dep = client.AppsV1Api(api).read_namespaced_deployment(
            name, ns, _request_timeout=REQUEST_TIMEOUT_S
        )
    except ApiException as exc:
        if exc.status == 404:
            raise NotFound(f"deployment {ns}/{name}") from exc
        raise FaultError(f"deployment {ns}/{name}: {api_error(exc)}") from exc
    wanted = desired_replicas(dep.spec)
    status = dep.status or client.V1DeploymentStatus()
    pods = (
        client.CoreV1Api(api)
        .list_namespaced_pod(
            ns,
            label_selector=selector_string(dep.spec.selector),
            _request_timeout=REQUEST_TIMEOUT_S,
        )
        .items
    )
    # The status lags the pods (a just-deleted pod is still counted ready until the
    # controller catches up): count the live, ready pods too. A deleted pod is marked with a
    # deletion timestamp before its DELETE returns, so it is never counted here.
    ready_pods = sum(1 for p in pods if p.metadata.deletion_timestamp is None and _pod_ready(p))
    counts = {
        "ready_replicas": status.ready_replicas or 0,
        "available_replicas": status.available_replicas or 0,
        "updated_replicas": status.updated_replicas or 0,
    }
    observed = (status.observed_generation or 0) >= (dep.metadata.generation or 0)
    met = observed and ready_pods >= wanted and all(v >= wanted for v in counts.values())
    return {"deployment": name, "met": met, "replicas": wanted, "ready_pods": ready_pods, **counts}


def wait_ready(api: client.ApiClient, ns: str, name: str, timeout_s: float) -> dict[str, Any]:
    """See the module docstring."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = readiness(api, ns, name)
        if state["met"]:
            return state
        if time.monotonic() > deadline:
            raise FaultError(f"deployment {ns}/{name} not ready after {timeout_s:g}s: {state}")
        time.sleep(POLL_S)


def phase(pod: Any) -> str | None:
    return pod.status.phase if pod.status else None


def _pod_ready(pod: Any) -> bool:
    conditions = (pod.status.conditions if pod.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def desired_replicas(spec: Any) -> int:
    """The desired replica count of a deployment spec (default 1)."""
    # An unset replica count means 1 (the API server's default).
    return 1 if spec.replicas is None else int(spec.replicas)


def selector_string(selector: Any) -> str:
    """See the module docstring."""
    terms = [f"{k}={v}" for k, v in sorted((selector.match_labels or {}).items())]
    for expr in selector.match_expressions or []:
        values = ",".join(expr.values or [])
        terms.append(
            {
                "In": f"{expr.key} in ({values})",
                "NotIn": f"{expr.key} notin ({values})",
                "Exists": expr.key,
                "DoesNotExist": f"!{expr.key}",
            }[expr.operator]
        )
    return ",".join(terms)


def match_labels(label_selector: str) -> dict[str, str]:
    """See the module docstring."""
    labels = {}
    for term in filter(None, (t.strip() for t in label_selector.split(","))):
        key, sep, value = term.partition("=")
        value = value.removeprefix("=")  # `key==value` is the same selector
        if not sep or not key.strip() or "!" in key or "=" in value:
            raise FaultError(
                f"label_selector {label_selector!r}: a NetworkPolicy selects pods by "
                "`key=value` pairs separated by commas, e.g. `app=gateway`"
            )
        labels[key.strip()] = value.strip()
    if not labels:
        raise FaultError("label_selector must name the target pods, e.g. `app=gateway`")
    return labels


def translated(what: str, act: Callable[[], Any]) -> Callable[[], Any]:
    """Wrap a chaosk8s call so that an API error becomes a FaultError saying what failed."""

    def run() -> Any:
        try:
            return act()
        except ApiException as exc:
            raise FaultError(f"{what}: {api_error(exc)}") from exc

    return run


def api_error(exc: ApiException) -> str:
    """The API server's answer in words, for error messages."""
    return f"API server answered {exc.status} {exc.reason}"
