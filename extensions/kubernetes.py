"""Kubernetes faults with undo records: pod kill with a blast radius, scale-down, deny ingress.

Thin helpers around chaostoolkit-kubernetes (``chaosk8s``) for what it lacks:

- ``kill_pods``: a *seeded*, rounded-down percentage or a count of the pods matching a label
  selector (chaosk8s' ``terminate_pods`` rounds a percentage up and records no seed), and
  only pods run by a controller, deleted by uid so a replacement is never hit;
- ``scale_deployment``: chaosk8s' action, with the original replica count recorded first;
- ``deny_ingress``: a NetworkPolicy created through chaosk8s, uniquely named and tokened so
  its undo deletes exactly it.

Every fault writes its undo record to the fault ledger before it acts (see
``extensions.faults``). The record holds the API server URL, the kubeconfig context name
and the namespace and names involved — never credentials: reverters connect through the
usual kubeconfig (or in-cluster) loading of chaosk8s, and refuse to act when that points at
another API server than the record's. So ``inoculate recover`` can undo a fault from the
ledger alone. Pods need no restoring (their controller recreates them): a pod kill's undo
waits until the owning deployments are ready again.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from chaosk8s import create_k8s_api_client, get_config_path, has_local_config_file
from chaosk8s.deployment import actions as k8s_deployments
from chaosk8s.networking import actions as k8s_networking
from chaoslib.types import Configuration, Secrets
from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.rest import ApiException

from extensions.blast_radius import BlastRadiusError, select
from extensions.faults import FaultError, Reverter, inject, revert_outstanding
from extensions.ledger import LedgerRecord, ledger_from_configuration

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

MODULE = "extensions.kubernetes"
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
        return {"api_server": self.api_server, "context": self.context}


# --- actions ---


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
    api, cluster = _connect(secrets)
    core = client.CoreV1Api(api)
    pods = core.list_namespaced_pod(
        ns, label_selector=label_selector, _request_timeout=REQUEST_TIMEOUT_S
    ).items
    live = sorted(
        (p for p in pods if p.metadata.deletion_timestamp is None and _phase(p) == "Running"),
        key=lambda p: p.metadata.name,
    )
    owned = [p for p in live if _controller_of(p.metadata) is not None]
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
    workloads = _workloads(api, ns, selection.chosen)
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
        MODULE,
        "kill_pods",
        {"api_server": cluster.api_server, "namespace": ns, "label_selector": label_selector},
        undo,
        act=lambda: _delete_pods(core, ns, chosen, grace_period_s),
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
    api, cluster = _connect(secrets)
    apps = client.AppsV1Api(api)
    try:
        current = apps.read_namespaced_deployment(name, ns, _request_timeout=REQUEST_TIMEOUT_S)
    except ApiException as exc:
        raise FaultError(f"deployment {ns}/{name}: {_api_error(exc)}") from exc
    original = _replicas(current.spec)
    undo = {**cluster.to_json(), "namespace": ns, "deployment": name, "replicas": original}
    inject(
        configuration,
        MODULE,
        "scale_deployment",
        {"api_server": cluster.api_server, "namespace": ns, "deployment": name},
        undo,
        act=_translated(
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
    labels = _match_labels(label_selector)
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
    _, cluster = _connect(secrets)
    undo = {**cluster.to_json(), "namespace": ns, "policy": policy, "token": token}
    inject(
        configuration,
        MODULE,
        "deny_ingress",
        {"api_server": cluster.api_server, "namespace": ns, "label_selector": label_selector},
        undo,
        act=_translated(
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
    api, _ = _connect(secrets)
    core = client.CoreV1Api(api)
    pods = core.list_namespaced_pod(
        ns, label_selector=label_selector, _request_timeout=REQUEST_TIMEOUT_S
    ).items
    waited = []
    for workload in _workloads(api, ns, pods):
        if workload["kind"] == "Deployment":
            try:
                waited.append(_wait_ready(api, ns, workload["name"], timeout_s))
            except _NotFound:
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


# --- probes ---


def deployment_ready(name: str, ns: str = "default", secrets: Secrets = None) -> dict[str, Any]:
    """Probe: whether every desired replica of the deployment is updated, ready and
    available, counted from its status *and* from its live pods:
    ``{met, replicas, ready_pods, ready_replicas, available_replicas, updated_replicas}``."""
    api, _ = _connect(secrets)
    return _readiness(api, ns, name)


def wait_deployment_ready(
    name: str, ns: str = "default", timeout_s: float = 120.0, secrets: Secrets = None
) -> dict[str, Any]:
    """Wait until :func:`deployment_ready` is met; fail after ``timeout_s`` seconds."""
    api, _ = _connect(secrets)
    return _wait_ready(api, ns, name, timeout_s)


# --- reverters: undo a fault from its ledger record alone (rollbacks and recover) ---


def _revert_kill_pods(record: LedgerRecord) -> str:
    api = _connect_recorded(record)
    ns = str(record.undo["namespace"])
    timeout_s = float(record.undo.get("ready_timeout_s", 120.0))
    done = []
    for workload in record.undo.get("workloads", []):
        if workload["kind"] != "Deployment":
            done.append(f"{workload['kind']} {workload['name']} not waited for")
            continue
        try:
            state = _wait_ready(api, ns, workload["name"], timeout_s)
        except _NotFound:
            done.append(f"deployment {workload['name']} no longer exists")
            continue
        done.append(f"deployment {workload['name']} ready ({state['ready_pods']} pods)")
    return "; ".join(done) or "no controller to wait for"


def _revert_scale(record: LedgerRecord) -> str:
    apps = client.AppsV1Api(_connect_recorded(record))
    ns, name = str(record.undo["namespace"]), str(record.undo["deployment"])
    replicas = int(record.undo["replicas"])
    try:
        apps.patch_namespaced_deployment(
            name, ns, {"spec": {"replicas": replicas}}, _request_timeout=REQUEST_TIMEOUT_S
        )
    except ApiException as exc:
        if exc.status == 404:
            return f"deployment {ns}/{name} no longer exists; nothing to restore"
        raise FaultError(f"restoring {ns}/{name}: {_api_error(exc)}") from exc
    return f"deployment {ns}/{name} scaled back to {replicas}"


def _revert_deny_ingress(record: LedgerRecord) -> str:
    net = client.NetworkingV1Api(_connect_recorded(record))
    ns, policy = str(record.undo["namespace"]), str(record.undo["policy"])
    try:
        found = net.read_namespaced_network_policy(policy, ns, _request_timeout=REQUEST_TIMEOUT_S)
    except ApiException as exc:
        if exc.status == 404:
            return f"NetworkPolicy {ns}/{policy} already gone"
        raise FaultError(f"reading NetworkPolicy {ns}/{policy}: {_api_error(exc)}") from exc
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
            raise FaultError(f"deleting NetworkPolicy {ns}/{policy}: {_api_error(exc)}") from exc
    return f"NetworkPolicy {ns}/{policy} deleted"


FAULTS: Mapping[str, Reverter] = MappingProxyType(
    {
        "kill_pods": _revert_kill_pods,
        "scale_deployment": _revert_scale,
        "deny_ingress": _revert_deny_ingress,
    }
)


# --- connection ---


def _connect(secrets: Secrets = None) -> tuple[client.ApiClient, Cluster]:
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


def _connect_recorded(record: LedgerRecord) -> client.ApiClient:
    context = record.undo.get("context")
    api, cluster = _connect({"KUBERNETES_CONTEXT": context} if context else None)
    if cluster.api_server != record.undo.get("api_server"):
        raise FaultError(
            f"this fault was injected through {record.undo.get('api_server')} but the "
            f"Kubernetes configuration now points at {cluster.api_server}; set KUBECONFIG "
            "(and KUBERNETES_CONTEXT) to the original cluster and run `inoculate recover` again"
        )
    return api


def _revert_matching(
    configuration: Configuration, fault: str, matches: Callable[[Mapping[str, Any]], bool]
) -> list[dict[str, Any]]:
    outcomes = revert_outstanding(
        ledger_from_configuration(configuration),
        matches=lambda r: r.module == MODULE and r.fault == fault and matches(r.target),
    )
    failed = [o for o in outcomes if not o.reverted]
    if failed:
        raise FaultError("could not revert: " + "; ".join(o.detail for o in failed))
    return [o.to_json() for o in outcomes]


# --- pods, workloads, readiness ---


class _NotFound(Exception):
    pass


def _delete_pods(
    core: client.CoreV1Api, ns: str, pods: list[dict[str, str]], grace_period_s: int | None
) -> list[str]:
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
            raise FaultError(f"deleting pod {ns}/{pod['name']}: {_api_error(exc)}") from exc
        deleted.append(pod["name"])
    if pods and not deleted:
        raise FaultError("every selected pod was gone before it could be deleted")
    return deleted


def _controller_of(metadata: Any) -> Any:
    return next((o for o in metadata.owner_references or [] if o.controller), None)


def _workloads(api: client.ApiClient, ns: str, pods: Iterable[Any]) -> list[dict[str, str]]:
    """The top-level controllers of the pods: a ReplicaSet's Deployment, else the owner."""
    apps = client.AppsV1Api(api)
    found: set[tuple[str, str]] = set()
    replica_sets: dict[str, tuple[str, str]] = {}
    for pod in pods:
        owner = _controller_of(pod.metadata)
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
        raise FaultError(f"replica set {ns}/{name}: {_api_error(exc)}") from exc
    top = _controller_of(rs.metadata)
    return (str(top.kind), str(top.name)) if top else ("ReplicaSet", name)


def _readiness(api: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    try:
        dep = client.AppsV1Api(api).read_namespaced_deployment(
            name, ns, _request_timeout=REQUEST_TIMEOUT_S
        )
    except ApiException as exc:
        if exc.status == 404:
            raise _NotFound(f"deployment {ns}/{name}") from exc
        raise FaultError(f"deployment {ns}/{name}: {_api_error(exc)}") from exc
    wanted = _replicas(dep.spec)
    status = dep.status or client.V1DeploymentStatus()
    pods = (
        client.CoreV1Api(api)
        .list_namespaced_pod(
            ns,
            label_selector=_selector_string(dep.spec.selector),
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


def _wait_ready(api: client.ApiClient, ns: str, name: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        state = _readiness(api, ns, name)
        if state["met"]:
            return state
        if time.monotonic() > deadline:
            raise FaultError(f"deployment {ns}/{name} not ready after {timeout_s:g}s: {state}")
        time.sleep(POLL_S)


def _phase(pod: Any) -> str | None:
    return pod.status.phase if pod.status else None


def _pod_ready(pod: Any) -> bool:
    conditions = (pod.status.conditions if pod.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _replicas(spec: Any) -> int:
    # An unset replica count means 1 (the API server's default).
    return 1 if spec.replicas is None else int(spec.replicas)


def _selector_string(selector: Any) -> str:
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


def _match_labels(label_selector: str) -> dict[str, str]:
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


def _translated(what: str, act: Callable[[], Any]) -> Callable[[], Any]:
    """Wrap a chaosk8s call so that an API error becomes a FaultError saying what failed."""

    def run() -> Any:
        try:
            return act()
        except ApiException as exc:
            raise FaultError(f"{what}: {_api_error(exc)}") from exc

    return run


def _api_error(exc: ApiException) -> str:
    return f"API server answered {exc.status} {exc.reason}"
