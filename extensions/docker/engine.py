"""Docker Engine plumbing for ``inoculate.extensions.docker``: the client, target selection,
container facts, re-creating a removed container, and the arithmetic of ``docker update`` limits.

A removed container's creation spec never holds its environment's values: only the
variables' names and which of them its image provides (:func:`creation_spec`); the values
it set itself go to a 0600 file beside the ledger (:mod:`.sidecar`), and :func:`restore_env`
puts the two back together.

Everything talks to the daemon through the Docker SDK (``docker`` on PyPI). The daemon a
fault used is recorded in its ledger record (``docker_host``), so a reverter running in
``inoculate recover`` — with no experiment configuration — reaches the same daemon.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import docker
from docker.errors import DockerException, NotFound

from inoculate.model.errors import FaultError
from inoculate.systems.registry import system_from_configuration

__all__ = [
    "DOCKER_HOST_CONFIG_KEY",
    "ContainerRef",
    "ContainerSystem",
    "DockerUnavailable",
    "Selector",
    "container_facts",
    "container_system",
    "creation_spec",
    "docker_host",
    "find_containers",
    "image_env",
    "inspect_or_none",
    "is_healthy",
    "missing_networks",
    "open_client",
    "recreate",
    "resources_of",
    "restore_body",
    "restore_env",
    "squeeze_body",
    "update_resources",
    "wait_until",
]

DOCKER_HOST_CONFIG_KEY = "docker_host"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
API_TIMEOUT_S = 30
# What the kernel reports for "no memory limit" (PAGE_COUNTER_MAX pages of 4 KiB); see
# restore_body for why a lifted limit is written as this number.
UNLIMITED_MEMORY = 9223372036854771712
CFS_PERIOD_US = 100_000
MIN_MEMORY = 6 * 1024 * 1024  # the daemon refuses smaller limits
# Container config keys that POST /containers/create takes back as they were inspected. The
# environment is not one of them: its values stay out of the ledger (see creation_spec).
_CREATE_KEYS = (
    "Image", "Cmd", "Entrypoint", "Labels", "WorkingDir", "User", "Hostname",
    "Domainname", "ExposedPorts", "Healthcheck", "StopSignal", "StopTimeout", "Tty",
    "OpenStdin", "StdinOnce", "AttachStdin", "AttachStdout", "AttachStderr", "Volumes",
)  # fmt: skip
_ENDPOINT_KEYS = ("Aliases", "IPAMConfig", "Links", "DriverOpts")
# Networks every daemon has: they never go away with a system.
_BUILTIN_NETWORKS = frozenset({"bridge", "host", "none", "default"})


class DockerUnavailable(FaultError):
    """The Docker daemon cannot be reached (not running, no permission, wrong DOCKER_HOST)."""


@runtime_checkable
class ContainerSystem(Protocol):
    """An embedded system whose services run as containers (``service:`` targets)."""

    def container_labels(self, state_dir: Path, service: str) -> list[str]:
        """Docker label filters (``key=value``) matching the containers of ``service``."""
        ...

    def network(self, state_dir: Path) -> str:
        """The name of the Docker network the system's containers share."""
        ...


@dataclass(frozen=True)
class ContainerRef:
    """A container as listed by the daemon."""

    id: str
    name: str
    state: str  # created, running, paused, restarting, removing, exited, dead

    def to_json(self) -> dict[str, str]:
        """``{id, name}`` for records and outputs."""
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True)
class Selector:
    """Which containers a fault or probe is about: by name, label, name regex or service."""

    kind: str  # name, label, pattern or service
    value: str | tuple[str, ...]
    label_filters: tuple[str, ...] = ()

    @classmethod
    def from_arguments(
        cls,
        name: str | list[str] | None,
        label: str | list[str] | None,
        pattern: str | None,
        service: str | None,
        configuration: Mapping[str, Any] | None,
    ) -> Selector:
        """Build the selector an activity's arguments describe; exactly one must be given."""
        given = {k: v for k, v in (("name", name), ("label", label), ("pattern", pattern),
                                   ("service", service)) if v not in (None, "", [])}  # fmt: skip
        if len(given) != 1:
            raise FaultError(
                "give exactly one target: `name` (container names), `label` (key=value), "
                f"`pattern` (a regular expression on names) or `service`; got {sorted(given)}"
            )
        kind, value = next(iter(given.items()))
        if kind == "pattern":
            try:
                re.compile(str(value))
            except re.error as exc:
                raise FaultError(
                    f"pattern {value!r} is not a valid regular expression: {exc}"
                ) from exc
            return cls("pattern", str(value))
        if kind == "service":
            return cls("service", str(value), _service_labels(str(value), configuration))
        values = tuple(sorted({value} if isinstance(value, str) else set(value)))
        return cls(kind, values, values if kind == "label" else ())

    def to_json(self) -> dict[str, Any]:
        """The selector as the experiment wrote it (single values unwrapped)."""
        value = self.value
        if isinstance(value, tuple) and len(value) == 1:
            value = value[0]
        return {self.kind: list(value) if isinstance(value, tuple) else value}

    def designates(self, recorded: Mapping[str, Any], present: Iterable[ContainerRef]) -> bool:
        """Whether a container of a ledger record (``{id, name, spec?}``) is one this
        selector names: by name or id, by the pattern on its name, or by its labels — as
        listed now (``present``: what the selector finds on the daemon) or, for a removed
        container, as its recorded spec holds them."""
        cid, name = str(recorded.get("id") or ""), str(recorded.get("name") or "")
        if any(ref.id == cid or ref.name == name for ref in present):
            return True
        if self.kind == "name":
            return any(v in (name, cid) or (len(v) >= 12 and cid.startswith(v)) for v in self.value)
        if self.kind == "pattern":
            return re.search(str(self.value), name) is not None
        labels = ((recorded.get("spec") or {}).get("config") or {}).get("Labels") or {}
        return bool(labels) and all(_label_matches(f, labels) for f in self.label_filters)

    def matches_name(self, name: str) -> bool:
        """Whether a container name matches (label filters are applied by the daemon)."""
        if self.kind == "name":
            return name in self.value
        if self.kind == "pattern":
            return re.search(str(self.value), name) is not None
        return True


def _label_matches(label_filter: str, labels: Mapping[str, str]) -> bool:
    key, has_value, value = label_filter.partition("=")
    return key in labels and (not has_value or labels[key] == value)


def container_system(configuration: Mapping[str, Any] | None) -> tuple[ContainerSystem, Path]:
    """The run's embedded system, when its services run as containers."""
    system, state_dir = system_from_configuration(configuration)
    if not isinstance(system, ContainerSystem):
        raise FaultError(
            f"the embedded system {system.name!r} does not run containers; "
            "target containers by `name`, `label` or `pattern`"
        )
    return system, state_dir


def _service_labels(service: str, configuration: Mapping[str, Any] | None) -> tuple[str, ...]:
    system, state_dir = container_system(configuration)
    return tuple(system.container_labels(state_dir, service))


def docker_host(configuration: Mapping[str, Any] | None = None) -> str:
    """The daemon to talk to: configuration ``docker_host``, ``$DOCKER_HOST``, or the socket."""
    configured = (configuration or {}).get(DOCKER_HOST_CONFIG_KEY)
    return str(configured or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST)


@contextlib.contextmanager
def open_client(host: str) -> Iterator[docker.DockerClient]:
    """A client of the daemon at ``host`` (TLS settings from the environment), closed after."""
    try:
        client = docker.from_env(
            environment={**os.environ, "DOCKER_HOST": host}, timeout=API_TIMEOUT_S
        )
        client.ping()
    except DockerException as exc:
        raise DockerUnavailable(
            f"cannot reach the Docker daemon at {host}: {exc}; is dockerd running, and may "
            "this user use it?"
        ) from exc
    try:
        yield client
    finally:
        client.close()


def find_containers(
    client: docker.DockerClient,
    selector: Selector,
    states: set[str] | None = None,
    network: str | None = None,
) -> list[ContainerRef]:
    """Containers matching the selector, in one of ``states`` and attached to ``network``
    when given, sorted by name."""
    filters: dict[str, list[str]] = {}
    if selector.label_filters:
        filters["label"] = list(selector.label_filters)
    if network:
        filters["network"] = [network]
    listed = client.api.containers(all=True, filters=filters or None)
    found = []
    for item in listed:
        name = (item.get("Names") or ["/"])[0].lstrip("/")
        ref = ContainerRef(item["Id"], name, str(item.get("State", "")))
        if selector.matches_name(name) and (states is None or ref.state in states):
            found.append(ref)
    return sorted(found, key=lambda ref: ref.name)


def inspect_or_none(api: Any, container_id: str) -> dict[str, Any] | None:
    """``docker inspect``, or None when the container no longer exists."""
    try:
        return api.inspect_container(container_id)
    except NotFound:
        return None


def container_facts(info: Mapping[str, Any]) -> dict[str, Any]:
    """What probes report about one container, from its inspect document."""
    state = info["State"]
    health = (state.get("Health") or {}).get("Status")
    return {
        "id": info["Id"],
        "name": info["Name"].lstrip("/"),
        "status": state.get("Status"),
        "running": bool(state.get("Running")) and not state.get("Paused"),
        "paused": bool(state.get("Paused")),
        "restarting": bool(state.get("Restarting")),
        "health": health or "none",
        "restart_count": int(info.get("RestartCount") or 0),
        "exit_code": state.get("ExitCode"),
        "pid": state.get("Pid") or None,
        "networks": sorted((info.get("NetworkSettings") or {}).get("Networks") or {}),
        "restart_policy": ((info.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name"),
    }


def is_healthy(facts: Mapping[str, Any]) -> bool:
    """Running and healthy; a container without a health check counts as healthy."""
    return bool(facts["running"]) and facts["health"] in ("healthy", "none")


def wait_until(
    check: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.02
) -> Any:
    """Poll ``check`` until it returns something truthy; FaultError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise FaultError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


# --- remove: what it takes to create the container again ---


def creation_spec(
    info: Mapping[str, Any], image_env: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """Everything ``recreate`` needs, from the container's inspect document, without the
    values of its environment; and those values (the ``KEY=value`` entries its image does
    not provide), to be kept apart from the ledger.

    The container's config and host config go back to ``POST /containers/create`` as they
    were inspected; its networks (with aliases and static addresses) are reconnected; its
    anonymous volumes are re-attached by name (they are kept when the container is
    removed). The spec's ``env`` lists the variables' names in order and those whose entry
    is the image's own (``image_env``: read back from the image at re-creation). What is
    lost: files written to the container's own writable layer.
    """
    config = {k: info["Config"][k] for k in _CREATE_KEYS if info["Config"].get(k) is not None}
    host_config = dict(info["HostConfig"])
    binds = list(host_config.get("Binds") or [])
    declared = set(info["Config"].get("Volumes") or {})
    for mount in info.get("Mounts") or []:
        destination = mount.get("Destination")
        bound = any(b.split(":")[1:2] == [destination] for b in binds)
        if mount.get("Type") == "volume" and destination in declared and not bound:
            binds.append(f"{mount['Name']}:{destination}")
    if binds:
        host_config["Binds"] = binds
    env = list(info["Config"].get("Env") or [])
    from_image = set(image_env)
    spec = {
        "name": info["Name"].lstrip("/"),
        "image_id": info["Image"],
        "running": bool(info["State"].get("Running")),
        "config": config,
        "env": {
            "names": [_env_name(e) for e in env],
            "from_image": sorted({_env_name(e) for e in env if e in from_image}),
        },
        "host_config": host_config,
        "networks": _endpoints(info),
    }
    return spec, [e for e in env if e not in from_image]


def _endpoints(info: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    own_alias = info["Id"][:12]
    networks = {}
    for network, settings in ((info.get("NetworkSettings") or {}).get("Networks") or {}).items():
        endpoint = {k: settings[k] for k in _ENDPOINT_KEYS if settings.get(k)}
        aliases = [a for a in endpoint.get("Aliases", []) if a != own_alias]
        endpoint.pop("Aliases", None)
        if aliases:
            endpoint["Aliases"] = aliases
        networks[network] = endpoint
    return networks


def _env_name(entry: str) -> str:
    return entry.partition("=")[0]


def image_env(api: Any, image_id: str) -> list[str]:
    """The environment an image gives its containers (``[]`` when the image is gone)."""
    try:
        return list((api.inspect_image(image_id).get("Config") or {}).get("Env") or [])
    except NotFound:
        return []


def restore_env(spec: Mapping[str, Any], from_image: list[str], own: list[str]) -> list[str]:
    """The container's environment again, in its order: each variable from the image
    (``from_image``) or from the entries it set itself (``own``, kept beside the ledger)."""
    recorded = spec.get("env") or {}
    image = {_env_name(e): e for e in from_image}
    image_names = set(recorded.get("from_image") or [])
    own_entries = iter(own)
    env = []
    for name in recorded.get("names") or []:
        entry = image.get(name) if name in image_names else next(own_entries, None)
        if entry is None or _env_name(entry) != name:
            raise FaultError(
                f"the environment variable {name} of {spec['name']} is no longer known (its "
                "image changed, or the file beside the ledger that kept its value is gone): "
                f"re-create {spec['name']} by hand; `inoculate recover` then finds it and "
                "settles the fault"
            )
        env.append(entry)
    return env


def missing_networks(api: Any, spec: Mapping[str, Any]) -> list[str]:
    """The networks a removed container was on that no longer exist (nor, for a
    ``container:<id>`` network mode, the container it shared a network with)."""
    missing = []
    mode = str(spec["host_config"].get("NetworkMode") or "")
    if mode.startswith("container:") and inspect_or_none(api, mode.partition(":")[2]) is None:
        missing.append(mode)
    for network in spec["networks"]:
        if network in _BUILTIN_NETWORKS:
            continue
        try:
            api.inspect_network(network)
        except NotFound:
            missing.append(network)
    return missing


def recreate(api: Any, spec: Mapping[str, Any], env: list[str]) -> str:
    """Create (and start, if it ran) a container from a :func:`creation_spec` and its
    environment; return its id. If that fails half-way, what was created is removed."""
    body: dict[str, Any] = {**spec["config"], "HostConfig": spec["host_config"]}
    if env:
        body["Env"] = env
    body["Image"] = _same_image(api, str(body.get("Image") or ""), str(spec["image_id"]))
    networks: dict[str, Any] = dict(spec["networks"])
    mode = str(spec["host_config"].get("NetworkMode") or "")
    first = mode if mode in networks else next(iter(networks), None)
    if first is not None:
        body["NetworkingConfig"] = {"EndpointsConfig": {first: networks.pop(first)}}
    try:
        created = api.create_container_from_config(body, name=spec["name"])["Id"]
    except DockerException as exc:
        raise FaultError(f"cannot create {spec['name']} again: {exc}") from exc
    try:
        _attach_and_start(api, created, networks, bool(spec["running"]))
    except DockerException as exc:
        # A created container that cannot run would outlive everything: take it back.
        with contextlib.suppress(NotFound):
            api.remove_container(created, force=True, v=False)
        raise FaultError(
            f"re-created {spec['name']}, but it could not be connected or started ({exc}); "
            "it was removed again"
        ) from exc
    return str(created)


def _attach_and_start(api: Any, created: str, networks: Mapping[str, Any], start: bool) -> None:
    for network, endpoint in networks.items():
        ipam = endpoint.get("IPAMConfig") or {}
        api.connect_container_to_network(
            created,
            network,
            aliases=endpoint.get("Aliases"),
            links=endpoint.get("Links"),
            ipv4_address=ipam.get("IPv4Address") or None,
            ipv6_address=ipam.get("IPv6Address") or None,
        )
    if start:
        api.start(created)


def _same_image(api: Any, reference: str, image_id: str) -> str:
    # The tag may have moved since: only the id is sure to name the image the container ran.
    with contextlib.suppress(DockerException):
        if reference and api.inspect_image(reference)["Id"] == image_id:
            return reference
    return image_id


# --- docker update: squeeze and restore ---

_RESOURCE_KEYS = ("NanoCpus", "CpuQuota", "CpuPeriod", "Memory", "MemorySwap")


def resources_of(info: Mapping[str, Any]) -> dict[str, int]:
    """The CPU and memory limits of a container, as its host config holds them."""
    host = info["HostConfig"]
    return {key: int(host.get(key) or 0) for key in _RESOURCE_KEYS}


def squeeze_body(original: Mapping[str, int], cpus: float | None, memory: int | None) -> dict:
    """The ``docker update`` body that squeezes a container to ``cpus`` and ``memory`` bytes.

    A container limited with ``--cpus`` (NanoCpus) keeps that form; any other gets a CFS
    quota. Swap is squeezed with the memory (MemorySwap = Memory): no escape into swap.
    """
    body: dict[str, int] = {}
    if cpus is not None:
        if original["NanoCpus"]:
            body["NanoCpus"] = int(cpus * 1e9)
        else:
            body["CpuPeriod"] = CFS_PERIOD_US
            body["CpuQuota"] = int(cpus * CFS_PERIOD_US)
    if memory is not None:
        body["Memory"] = memory
        body["MemorySwap"] = memory
    return body


def restore_body(original: Mapping[str, int], squeezed: Mapping[str, int]) -> dict[str, int]:
    """The ``docker update`` body that puts back the limits a squeeze changed.

    The daemon reads 0 as "leave unchanged" and cannot clear a limit (moby/moby#22516,
    docker/for-linux#558), so a limit that was not set is restored as what the kernel holds
    when there is none: CPU quota -1 and the kernel's maximum memory (``docker inspect`` then
    shows those values instead of 0; the cgroup is exactly as before).
    """
    body: dict[str, int] = {}
    if "NanoCpus" in squeezed:
        body["NanoCpus"] = original["NanoCpus"]
    if "CpuQuota" in squeezed:
        body["CpuQuota"] = original["CpuQuota"] or -1
        body["CpuPeriod"] = original["CpuPeriod"] or CFS_PERIOD_US
    if "Memory" in squeezed:
        body["Memory"] = original["Memory"] or UNLIMITED_MEMORY
        swap = original["MemorySwap"]
        body["MemorySwap"] = swap if swap else (UNLIMITED_MEMORY if not original["Memory"] else -1)
    return body


def update_resources(api: Any, container_id: str, body: Mapping[str, int]) -> None:
    """POST the update. docker-py's ``update_container`` has no NanoCpus and drops falsy
    values, so the body goes to the Engine API's update endpoint as it is."""
    url = api._url("/containers/{0}/update", container_id)
    api._result(api._post_json(url, data=dict(body)), True)


def parse_memory(value: str | int) -> int:
    """Bytes from ``64m``, ``1g``, ``512k`` or a number of bytes (at least 6 MiB)."""
    try:
        size = docker.utils.parse_bytes(value)
    except DockerException as exc:
        raise FaultError(f"memory {value!r}: {exc}; expected bytes or e.g. '64m'") from exc
    if size < MIN_MEMORY:
        raise FaultError(f"memory {value!r} is below the daemon's minimum of 6m")
    return int(size)
