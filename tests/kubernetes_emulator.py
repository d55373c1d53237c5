"""A Kubernetes API fake for tests: kmock's ``KubernetesEmulator`` served over HTTP on 127.0.0.1.

The real ``kubernetes`` client and chaostoolkit-kubernetes talk to it through a kubeconfig
file, exactly as they talk to a cluster; tests read and seed its objects directly.

kmock's emulator stores objects, merges PATCH bodies and deletes, but it has no
controllers and ignores ``labelSelector``/``fieldSelector`` on list requests (it returns every
object of the namespace). :class:`SelectorAwareEmulator` adds the selectors, because pod
selection is what our helpers test; :class:`FakeDeploymentController` plays the deployment
controller (recreates deleted pods, follows ``spec.replicas``, reports status) so that
"wait until the deployment is ready again" has something to wait for.

kmock also has no ``resourceVersion``, no PUT (replace) and no delete preconditions, which
optimistic concurrency (a ``Lease`` taken over by one of two racing processes) needs:
:class:`VersionedEmulator` adds them, and is what :func:`running_api_fake` serves.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import re
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp.web
import attrs
import kmock
import yaml
from kmock._internal.k8s import KubernetesError, KubernetesObjectNotFoundError

__all__ = [
    "DEPLOYMENTS",
    "NETWORK_POLICIES",
    "PODS",
    "REPLICA_SETS",
    "ApiFake",
    "FakeDeploymentController",
    "SelectorAwareEmulator",
    "VersionedEmulator",
    "running_api_fake",
]

PODS = "v1/pods"
DEPLOYMENTS = "apps/v1/deployments"
REPLICA_SETS = "apps/v1/replicasets"
NETWORK_POLICIES = "networking.k8s.io/v1/networkpolicies"
T = TypeVar("T")


class SelectorAwareEmulator(kmock.KubernetesEmulator):
    """``KubernetesEmulator`` whose list requests honour label and field selectors."""

    async def _serve_list(self, request: kmock.Request) -> Any:
        payload = await super()._serve_list(request)
        labels = request.params.get("labelSelector")
        fields = request.params.get("fieldSelector")
        payload["items"] = [
            item
            for item in payload["items"]
            if (not labels or matches_labels(labels, item))
            and (not fields or matches_fields(fields, item))
        ]
        return payload


def matches_labels(selector: str, obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` matches a Kubernetes label selector (equality, set and existence forms)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in re.split(r",(?![^(]*\))", selector):
        term = term.strip()
        if found := re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", term):
            key, op, values = found.groups()
            wanted = {v.strip() for v in values.split(",")}
            if (labels.get(key) in wanted) != (op == "in"):
                return False
        elif found := re.fullmatch(r"([\w./-]+)\s*(!=|==|=)\s*([\w./-]*)", term):
            key, op, value = found.groups()
            if (labels.get(key) == value) != (op != "!="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term and term not in labels:
            return False
    return True


def matches_fields(selector: str, obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` matches a field selector such as ``metadata.name=x,status.phase!=Failed``."""
    for term in selector.split(","):
        found = re.fullmatch(r"([\w.]+)\s*(!=|==|=)\s*(.*)", term.strip())
        if not found:
            raise ValueError(f"unsupported field selector {term!r}")
        path, op, value = found.groups()
        current: Any = obj
        for part in path.split("."):
            current = current.get(part) if isinstance(current, Mapping) else None
        if (str(current) == value) != (op != "!="):
            return False
    return True


@attrs.frozen
class ResourceVersionConflict(KubernetesError):
    """409 Conflict: the request names a resourceVersion the object no longer has."""

    status: int = 409
    reason: str = "Conflict"
    message: str = (
        "Operation cannot be fulfilled: the object has been modified; "
        "please apply your changes to the latest version and try again"
    )


_RESOURCE_VERSIONS = itertools.count(1)


class VersionedEmulator(SelectorAwareEmulator):
    """Optimistic concurrency as an API server has it, for the requests that carry it.

    Every create, merge patch and replace through HTTP gives the object a new
    ``metadata.resourceVersion`` (objects seeded with :meth:`ApiFake.put` keep theirs). A PUT
    replaces the whole object, and gets 409 Conflict when its body names another
    ``resourceVersion``; so does a DELETE whose ``preconditions`` name another
    ``resourceVersion`` or ``uid``. The check and the change happen under one hold of the
    emulator's lock, so two racing writers cannot both pass it.
    """

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        named = request.resource is not None and request.name is not None
        body = request.data if isinstance(request.data, dict) else None
        if named and request.method == "PUT":
            return aiohttp.web.json_response(await self._replace(request, body or {}))
        if named and request.method == "DELETE" and body and body.get("preconditions"):
            return aiohttp.web.json_response(await self._delete_if(request, body["preconditions"]))
        if request.resource is not None and request.method in ("POST", "PATCH") and body:
            body.setdefault("metadata", {})["resourceVersion"] = str(next(_RESOURCE_VERSIONS))
        return await super()._handle(request)

    def _stored(self, request: kmock.Request) -> dict[str, Any]:
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            raise KubernetesObjectNotFoundError()
        return self.objects[key].raw

    async def _replace(self, request: kmock.Request, body: dict[str, Any]) -> dict[str, Any]:
        async with self._lock:
            stored = self._stored(request)
            _check_version(stored, body.get("metadata") or {})
            new = copy.deepcopy(body)
            metadata = new.setdefault("metadata", {})
            metadata["resourceVersion"] = str(next(_RESOURCE_VERSIONS))
            for kept in ("uid", "creationTimestamp"):
                if kept in stored.get("metadata", {}):
                    metadata[kept] = stored["metadata"][kept]
            self.objects[(request.resource, request.namespace, request.name)].create(new)
            await self._buses[request.resource].put({"type": "MODIFIED", "object": new})
            return new

    async def _delete_if(
        self, request: kmock.Request, preconditions: Mapping[str, Any]
    ) -> dict[str, Any]:
        # Objects with finalizers are not supported here (nothing that needs them sends
        # preconditions): the object goes at once.
        async with self._lock:
            stored = self._stored(request)
            _check_version(stored, preconditions)
            self.objects[(request.resource, request.namespace, request.name)].delete()
            await self._buses[request.resource].put({"type": "DELETED", "object": stored})
            return stored


def _check_version(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> None:
    """409 when ``wanted`` (metadata or delete preconditions) names another version or uid."""
    metadata = stored.get("metadata") or {}
    for field in ("resourceVersion", "uid"):
        if wanted.get(field) and wanted[field] != metadata.get(field):
            raise ResourceVersionConflict()


class ApiFake:
    """The emulator, its event loop thread and its URL; thread-safe access for tests."""

    def __init__(self, emulator: VersionedEmulator, loop: asyncio.AbstractEventLoop, url: str):
        self.emulator = emulator
        self.loop = loop
        self.url = url

    def call(self, func: Callable[[], T]) -> T:
        """Run ``func`` on the emulator's loop, holding its lock (no request interleaves)."""

        async def locked() -> T:
            async with self.emulator._lock:
                return func()

        return self.run(locked())

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the emulator's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    def write_kubeconfig(self, path: Path, context: str = "kmock") -> Path:
        """Write a kubeconfig whose current context points at this fake (plain HTTP, no auth)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
            "current-context": context,
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    # --- objects (thread-safe) ---

    def put(self, resource: str, namespace: str | None, obj: Mapping[str, Any]) -> None:
        """Store an object as if it had been created (no request is recorded)."""
        name = obj["metadata"]["name"]

        def store() -> None:
            key = _key(resource, namespace, name)
            if key in self.emulator.objects and not self.emulator.objects[key].deleted:
                self.emulator.objects[key].patch(copy.deepcopy(dict(obj)))
            elif key in self.emulator.objects:
                self.emulator.objects[key].create(copy.deepcopy(dict(obj)))
            else:
                self.emulator.objects[key] = copy.deepcopy(dict(obj))

        self.call(store)

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object's current state, or None when it does not exist (or was deleted)."""

        def read() -> dict[str, Any] | None:
            key = _key(resource, namespace, name)
            if key not in self.emulator.objects or self.emulator.objects[key].deleted:
                return None
            return copy.deepcopy(self.emulator.objects[key].raw)

        return self.call(read)

    def delete(self, resource: str, namespace: str | None, name: str) -> None:
        """Delete an object as a controller would (no request is recorded)."""
        self.call(lambda: self.emulator.objects[_key(resource, namespace, name)].delete())

    def names(self, resource: str, namespace: str | None) -> list[str]:
        """Names of the live objects of a resource in a namespace, sorted."""

        def read() -> list[str]:
            return sorted(
                name
                for (res, ns, name), obj in self.emulator.objects.items()
                if res == kmock.resource(resource) and ns == namespace and not obj.deleted
            )

        return self.call(read)

    def requests(self, method: str, path_contains: str = "") -> list[kmock.Request]:
        """Requests the fake received with this HTTP method (and path fragment), oldest first."""

        def read() -> list[kmock.Request]:
            return [
                r
                for r in list(self.emulator)
                if r.method.value == method.upper() and path_contains in r.url.path
            ]

        return self.call(read)


def _key(resource: str, namespace: str | None, name: str) -> tuple[Any, str | None, str]:
    # ObjectsArray parses string resources on item access but not in `in` tests.
    return (kmock.resource(resource), namespace, name)


@contextmanager
def running_api_fake() -> Iterator[ApiFake]:
    """Serve a :class:`VersionedEmulator` on 127.0.0.1 (random port) from a thread."""
    loop = asyncio.new_event_loop()
    ready: dict[str, Any] = {}
    started = threading.Event()
    stop: asyncio.Event | None = None

    async def serve() -> None:
        nonlocal stop
        stop = asyncio.Event()
        async with (
            VersionedEmulator() as emulator,
            kmock.Server(emulator, host="127.0.0.1") as server,
        ):
            # Declared up front, as a cluster has them: kmock answers 404 to a list of a
            # resource it has not seen an object of yet (a deployment whose pods the fake
            # controller had not created at the first readiness check).
            for resource in (PODS, DEPLOYMENTS, REPLICA_SETS, NETWORK_POLICIES):
                emulator.resources[resource] = {}
            ready["fake"] = ApiFake(emulator, loop, str(server.url).rstrip("/"))
            started.set()
            await stop.wait()

    def main() -> None:
        try:
            loop.run_until_complete(serve())
        except BaseException as exc:  # surface start-up failures to the test thread
            ready["error"] = exc
            started.set()
        finally:
            loop.close()

    thread = threading.Thread(target=main, name="kube-api-fake", daemon=True)
    thread.start()
    if not started.wait(timeout=20):
        raise RuntimeError("the Kubernetes API fake did not start within 20s")
    if "error" in ready:
        raise RuntimeError(f"the Kubernetes API fake failed to start: {ready['error']!r}")
    try:
        yield ready["fake"]
    finally:
        loop.call_soon_threadsafe(stop.set)  # type: ignore[union-attr]
        thread.join(timeout=10)


# --- a deployment, its replica set and pods, as a cluster would hold them ---


def deployment(name: str, namespace: str, replicas: int, labels: Mapping[str, str]) -> dict:
    """A Deployment object with a ready status."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": str(uuid.uuid4()),
            "generation": 1,
            "labels": dict(labels),
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"containers": [{"name": name, "image": "inoculate/shop:test"}]},
            },
        },
        "status": _ready_status(replicas, generation=1),
    }


def replica_set(owner: Mapping[str, Any]) -> dict:
    """The ReplicaSet that a deployment controller would create for ``owner``."""
    name = f"{owner['metadata']['name']}-6d5f8b7c9"
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": owner["metadata"]["namespace"],
            "uid": str(uuid.uuid4()),
            "labels": dict(owner["spec"]["selector"]["matchLabels"]),
            "ownerReferences": [_owner_reference(owner)],
        },
        "spec": {
            "replicas": owner["spec"]["replicas"],
            "selector": copy.deepcopy(owner["spec"]["selector"]),
        },
    }


def pod(owner_rs: Mapping[str, Any], labels: Mapping[str, str], suffix: str | None = None) -> dict:
    """A running, ready pod owned by a ReplicaSet."""
    name = f"{owner_rs['metadata']['name']}-{suffix or uuid.uuid4().hex[:5]}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": owner_rs["metadata"]["namespace"],
            "uid": str(uuid.uuid4()),
            "labels": dict(labels),
            "creationTimestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ownerReferences": [_owner_reference(owner_rs)],
        },
        "spec": {"containers": [{"name": "app", "image": "inoculate/shop:test"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }


def _owner_reference(owner: Mapping[str, Any]) -> dict:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        # Objects created from manifests have no uid in the fake (an API server assigns it).
        "uid": owner["metadata"].get("uid") or f"uid-{owner['metadata']['name']}",
        "controller": True,
    }


def _ready_status(replicas: int, generation: int) -> dict:
    return {
        "observedGeneration": generation,
        "replicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "updatedReplicas": replicas,
    }


class FakeDeploymentController:
    """Plays the deployment and ReplicaSet controllers for the fake, in a thread.

    Every ``period_s`` it compares each deployment's ``spec.replicas`` with its live pods;
    after ``delay_s`` of disagreement it creates or deletes pods and reports the new status.
    Until then the status shows what is really there (fewer ready replicas), as a real
    controller's would.
    """

    def __init__(self, fake: ApiFake, namespace: str, delay_s: float = 0.5, period_s: float = 0.05):
        self.fake = fake
        self.namespace = namespace
        self.delay_s = delay_s
        self.period_s = period_s
        self._since: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fake-controller", daemon=True)
        self.recreated: list[str] = []

    def __enter__(self) -> FakeDeploymentController:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            for name in self.fake.names(DEPLOYMENTS, self.namespace):
                self.reconcile(name)

    def _set_status(self, name: str, status: Mapping[str, Any]) -> None:
        # Status only, merged: writing the whole (possibly stale) object back would undo a
        # concurrent change of spec.replicas, which a real controller never does.
        self.fake.put(DEPLOYMENTS, self.namespace, _status_only(name, status))

    def reconcile(self, name: str) -> None:
        """One pass of the controller over deployment ``name``."""
        dep = self.fake.get(DEPLOYMENTS, self.namespace, name)
        if dep is None:
            return
        labels = dep["spec"]["selector"]["matchLabels"]
        rs = self.fake.get(REPLICA_SETS, self.namespace, replica_set(dep)["metadata"]["name"])
        if rs is None:
            rs = replica_set(dep)
            self.fake.put(REPLICA_SETS, self.namespace, rs)
        pods = [
            self.fake.get(PODS, self.namespace, n) for n in self.fake.names(PODS, self.namespace)
        ]
        mine = [p for p in pods if p and matches_labels(_selector(labels), p)]
        wanted = int(dep["spec"]["replicas"])
        generation = int(dep["metadata"].get("generation", 1))
        if len(mine) == wanted:
            self._since.pop(name, None)
            self._set_status(name, _ready_status(wanted, generation))
            return
        first_seen = self._since.setdefault(name, time.monotonic())
        live = min(len(mine), wanted)
        status = {
            **_ready_status(wanted, generation),
            "readyReplicas": live,
            "availableReplicas": live,
        }
        self._set_status(name, status)
        if time.monotonic() - first_seen < self.delay_s:
            return
        for _ in range(wanted - len(mine)):
            new = pod(rs, labels)
            self.recreated.append(new["metadata"]["name"])
            self.fake.put(PODS, self.namespace, new)
        for extra in sorted(p["metadata"]["name"] for p in mine)[wanted:]:
            self.fake.delete(PODS, self.namespace, extra)


def _status_only(name: str, status: Mapping[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": dict(status)}


def _selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items())


def seed_deployment(
    fake: ApiFake, name: str, namespace: str, replicas: int, labels: Mapping[str, str]
) -> list[str]:
    """Create a ready deployment with its ReplicaSet and pods; return the pod names."""
    dep = deployment(name, namespace, replicas, labels)
    rs = replica_set(dep)
    fake.put(DEPLOYMENTS, namespace, dep)
    fake.put(REPLICA_SETS, namespace, rs)
    names = []
    for index in range(replicas):
        new = pod(rs, labels, suffix=f"p{index:02d}")
        fake.put(PODS, namespace, new)
        names.append(new["metadata"]["name"])
    return names
