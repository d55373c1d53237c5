"""The ``shop-docker`` embedded system: the demo shop as containers on a network of its own.

One container per instance (``catalog-0`` …, ``orders-0``, ``gateway-0``), all on a bridge
network the run creates, with IP masquerading off so that the containers reach only each
other and the host; only the gateway's port is published, on 127.0.0.1. Peers find each
other by instance name (a network alias). Every container has a Docker health check and
the ``restart_policy`` knob; everything is labelled ``inoculate.shop=<id>``.

A SIGKILLed runner cannot remove its containers, and Docker would keep them running, so
``start`` first spawns a *reaper* — the idea of Testcontainers' Ryuk — holding the read end
of a pipe whose write end only the runner has: when the runner dies the pipe closes and
the reaper removes the shop's containers and network.

State lives in ``<state_dir>/docker-shop.json``; container names are stable (faults may
re-create a container, never under another name), so everything is looked up by name.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, DockerException, NotFound
from pydantic import BaseModel

from inoculate.demo.shop_docker.image import APP_DIR, image_tag
from inoculate.demo.shop_docker.knobs import DockerShopKnobs
from inoculate.demo.shop_docker.serve import PORT
from inoculate.model.errors import EmbeddedSystemError
from inoculate.systems.registry import ServiceProcess

__all__ = ["DockerShop", "DockerShopState", "ShopDockerSystem", "remove_shop"]

SHOP_LABEL = "inoculate.shop"
SERVICE_LABEL = "inoculate.service"
INSTANCE_LABEL = "inoculate.instance"
STATE_FILE_NAME = "docker-shop.json"
LOGS_DIR_NAME = "logs"
API_TIMEOUT_S = 60
# A TCP connect and one request, in bash: a Python health check would cost an interpreter
# start per check and container, which the shared 2-core machines feel under load.
HEALTH_COMMAND = (
    "exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3 "
    "&& head -c 12 <&3 | grep -q ' 200'"
)
SERVE_COMMAND = ("python3", "-m", "inoculate.demo.shop_docker.serve")
_STATES = {"created": "exited", "exited": "exited", "dead": "exited", "removing": "exited"}


@dataclass(frozen=True)
class DockerShopState:
    """What ``docker-shop.json`` holds about a started shop."""

    shop_id: str
    network: str
    docker_host: str
    gateway_url: str
    containers: dict[str, str]  # instance -> container name
    services: dict[str, str]  # instance -> service

    def write(self, state_dir: Path) -> None:
        """Write the state file (atomically)."""
        tmp = state_dir / (STATE_FILE_NAME + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        tmp.replace(state_dir / STATE_FILE_NAME)

    @classmethod
    def read(cls, state_dir: Path) -> DockerShopState:
        """Read the state file; EmbeddedSystemError when no shop was started there."""
        try:
            data = json.loads((Path(state_dir) / STATE_FILE_NAME).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise EmbeddedSystemError(
                f"no Docker shop in {state_dir} ({STATE_FILE_NAME} missing): is the system up?"
            ) from exc
        return cls(**data)

    def instances(self, service: str) -> list[str]:
        """The instances of ``service`` (a service name or an instance name)."""
        found = [i for i, s in self.services.items() if service in (i, s)]
        if not found:
            known = sorted(set(self.services.values()) | set(self.services))
            raise EmbeddedSystemError(
                f"the Docker shop has no service '{service}'; expected one of {known}"
            )
        return sorted(found)


@contextlib.contextmanager
def _client(host: str) -> Iterator[docker.DockerClient]:
    try:
        # From the environment, with the host pinned: TLS settings come along (DOCKER_CERT_PATH).
        client = docker.from_env(
            environment={**os.environ, "DOCKER_HOST": host}, timeout=API_TIMEOUT_S
        )
        client.ping()
    except DockerException as exc:
        raise EmbeddedSystemError(f"cannot reach the Docker daemon at {host}: {exc}") from exc
    try:
        yield client
    finally:
        client.close()


class DockerShop:
    """A running Docker shop: its URL, and ``stop`` (keeps each container's log first)."""

    def __init__(self, state_dir: Path, state: DockerShopState, reaper: subprocess.Popen) -> None:
        self.state_dir = state_dir
        self.state = state
        self._reaper = reaper

    @property
    def url(self) -> str:
        """The gateway, published on 127.0.0.1."""
        return self.state.gateway_url

    def stop(self) -> None:
        """Save every container's log under ``logs/``, remove containers and network."""
        with contextlib.suppress(EmbeddedSystemError), _client(self.state.docker_host) as client:
            _save_logs(client, self.state, self.state_dir / LOGS_DIR_NAME)
        remove_shop(self.state.docker_host, self.state.shop_id)
        if self._reaper.stdin is not None:
            self._reaper.stdin.close()  # the reaper finds nothing left, and exits
        try:
            self._reaper.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._reaper.kill()
            self._reaper.wait()


class ShopDockerSystem:
    """The demo shop in Docker, as an embedded system (``embedded: shop-docker``)."""

    name = "shop-docker"

    @property
    def knobs_model(self) -> type[BaseModel]:
        """The Docker shop's knobs."""
        return DockerShopKnobs

    def start(self, state_dir: Path, knobs: BaseModel, timeout_s: float) -> DockerShop:
        """Create the network and containers; return once every container is healthy."""
        assert isinstance(knobs, DockerShopKnobs)
        state_dir = Path(state_dir).resolve()
        state_dir.mkdir(parents=True, exist_ok=True)
        host = _docker_host()
        image = knobs.image or image_tag()
        shop_id = uuid.uuid4().hex[:10]
        with _client(host) as client:
            _require_image(client, image)
            reaper = _start_reaper(state_dir, host, shop_id)
            try:
                state = _create(client, state_dir, host, shop_id, image, knobs)
                state.write(state_dir)
                _wait_healthy(client, state, time.monotonic() + timeout_s)
            except BaseException:
                with contextlib.suppress(Exception):
                    _save_logs(client, DockerShopState.read(state_dir), state_dir / LOGS_DIR_NAME)
                remove_shop(host, shop_id)
                if reaper.stdin is not None:
                    reaper.stdin.close()
                raise
        return DockerShop(state_dir, state, reaper)

    def processes(self, state_dir: Path, service: str) -> list[ServiceProcess]:
        """The instances of a service, with the host pid of each container's main process."""
        state = DockerShopState.read(state_dir)
        with _client(state.docker_host) as client:
            return [_process(client, state, i) for i in state.instances(service)]

    def all_processes(self, state_dir: Path) -> list[ServiceProcess]:
        """Every instance of the shop."""
        state = DockerShopState.read(state_dir)
        with _client(state.docker_host) as client:
            return [_process(client, state, i) for i in sorted(state.services)]

    def start_instance(self, state_dir: Path, instance: str) -> None:
        """Start (or unpause) an instance's container; wait until it runs."""
        state = DockerShopState.read(state_dir)
        with _client(state.docker_host) as client:
            container = client.containers.get(state.containers[instance])
            if container.status == "paused":
                container.unpause()
            elif container.status != "running":
                container.start()
            _wait_running(client, state.containers[instance], 30.0)

    def restart_instance(self, state_dir: Path, instance: str) -> None:
        """``docker restart`` an instance's container; wait until it runs."""
        state = DockerShopState.read(state_dir)
        with _client(state.docker_host) as client:
            client.api.restart(state.containers[instance], timeout=5)
            _wait_running(client, state.containers[instance], 30.0)

    def is_running(self, state_dir: Path) -> bool:
        """Whether the shop's network still exists (it goes with the shop)."""
        try:
            state = DockerShopState.read(state_dir)
            with _client(state.docker_host) as client:
                client.api.inspect_network(state.network)
        except (EmbeddedSystemError, NotFound, OSError, ValueError):
            return False
        return True

    def network(self, state_dir: Path) -> str:
        """The shop's own Docker network."""
        return DockerShopState.read(state_dir).network

    def container_labels(self, state_dir: Path, service: str) -> list[str]:
        """Label filters selecting the containers of a service (or one instance)."""
        state = DockerShopState.read(state_dir)
        state.instances(service)  # raises, naming the services, when it does not exist
        key = INSTANCE_LABEL if service in state.services else SERVICE_LABEL
        return [f"{SHOP_LABEL}={state.shop_id}", f"{key}={service}"]


def remove_shop(host: str, shop_id: str, rounds: int = 20) -> list[str]:
    """Remove every container and the network labelled with ``shop_id``; return the names.

    Sweeps again until nothing labelled is left (at most ``rounds`` times): a container
    created while the shop goes — the undo of ``remove_containers`` re-creating one of its
    containers — keeps the network busy, and must go with the rest instead of outliving it.
    """
    removed: list[str] = []
    label = {"label": [f"{SHOP_LABEL}={shop_id}"]}
    with _client(host) as client:
        for _ in range(rounds):
            removed += _remove_containers(client.api, label)
            if _remove_networks(client.api, label) and not client.api.containers(
                all=True, filters=label
            ):
                break
            time.sleep(0.2)
    return removed


def _remove_containers(api: Any, label: dict[str, list[str]]) -> list[str]:
    removed = []
    for item in api.containers(all=True, filters=label):
        with contextlib.suppress(NotFound):
            api.remove_container(item["Id"], force=True, v=True)
            removed.append(item["Names"][0].lstrip("/"))
    return removed


def _remove_networks(api: Any, label: dict[str, list[str]]) -> bool:
    """Remove the labelled networks; False when one is still in use (swept again)."""
    done = True
    for network in api.networks(filters=label):
        try:
            api.remove_network(network["Id"])
        except NotFound:
            pass
        except APIError:
            done = False  # an endpoint is still attached: a container came meanwhile
    return done


# --- start-up ---


def _docker_host() -> str:
    from inoculate.extensions.docker.engine import docker_host

    return docker_host()


def _require_image(client: docker.DockerClient, image: str) -> None:
    try:
        client.api.inspect_image(image)
    except NotFound:
        raise EmbeddedSystemError(
            f"the image {image} is not built: run `make docker-image` (offline build)"
        ) from None


def _start_reaper(state_dir: Path, host: str, shop_id: str) -> subprocess.Popen[bytes]:
    with open(state_dir / "reaper.log", "ab") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "inoculate.demo.shop_docker.reaper",
                "--docker-host",
                host,
                shop_id,
            ],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Own session: a Ctrl-C meant for the runner must not kill the reaper first.
            start_new_session=True,
        )


def _instances(knobs: DockerShopKnobs) -> list[tuple[str, str, list[str]]]:
    """(service, instance, serve arguments) of every container, the gateway last."""
    catalogs = [f"catalog-{i}" for i in range(knobs.catalog_replicas)]
    gateway_args = ["--orders-url", f"http://orders-0:{PORT}"]
    for catalog in catalogs:
        gateway_args += ["--catalog-url", f"http://{catalog}:{PORT}"]
    gateway_args += ["--knobs-json", knobs.gateway_knobs().model_dump_json()]
    return [
        *(("catalog", c, []) for c in catalogs),
        ("orders", "orders-0", []),
        ("gateway", "gateway-0", gateway_args),
    ]


def _create(
    client: docker.DockerClient,
    state_dir: Path,
    host: str,
    shop_id: str,
    image: str,
    knobs: DockerShopKnobs,
) -> DockerShopState:
    api = client.api
    network = f"inoculate-{shop_id}"
    labels = {SHOP_LABEL: shop_id, "inoculate.state-dir": str(state_dir)}
    addresses = _create_network(api, network, labels, len(_instances(knobs)))
    plan = list(zip(_instances(knobs), addresses, strict=True))
    # The gateway finds its upstreams in /etc/hosts, not through Docker's DNS: a stopped
    # container's name vanishes from that DNS, and with no route out the DNS server then
    # leaves the lookup unanswered for 10 s (Docker 20.10) instead of failing it. A fixed
    # address behaves like a host that went down: refused, or unanswered until a timeout.
    peers = {instance: ip for (service, instance, _), ip in plan if service != "gateway"}
    containers, services = {}, {}
    for (service, instance, args), ip in plan:
        name = f"inoculate-{shop_id}-{instance}"
        published = {PORT: ("127.0.0.1", None)} if service == "gateway" else None
        api.create_container(
            image,
            command=[*SERVE_COMMAND, service, "--instance", instance, *args],
            name=name,
            hostname=instance,
            labels={**labels, SERVICE_LABEL: service, INSTANCE_LABEL: instance},
            environment={"PYTHONPATH": APP_DIR, "PYTHONUNBUFFERED": "1"},
            working_dir=APP_DIR,
            stop_signal="SIGTERM",
            ports=[PORT] if published else None,
            healthcheck=_healthcheck(knobs.healthcheck_interval_s),
            host_config=api.create_host_config(
                restart_policy={"Name": knobs.restart_policy, "MaximumRetryCount": 0},
                port_bindings=published,
                extra_hosts=peers if service == "gateway" else None,
            ),
            networking_config=api.create_networking_config(
                {network: api.create_endpoint_config(aliases=[instance], ipv4_address=ip)}
            ),
        )
        containers[instance], services[instance] = name, service
    for name in containers.values():
        api.start(name)
    return DockerShopState(
        shop_id, network, host, _gateway_url(client, containers["gateway-0"]), containers, services
    )


def _create_network(api: Any, name: str, labels: dict[str, str], hosts: int) -> list[str]:
    """Create the shop's network; return a fixed address for each of ``hosts`` containers.

    Fixed addresses need a subnet named at creation: let the daemon pick a free one first,
    then create the network again with it.
    """
    options = {"com.docker.network.bridge.enable_ip_masquerade": "false"}
    probe = api.create_network(name, driver="bridge", options=options, labels=labels)
    try:
        pool = api.inspect_network(probe["Id"])["IPAM"]["Config"][0]
    finally:
        api.remove_network(probe["Id"])
    ipam = docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet=pool["Subnet"], gateway=pool["Gateway"])]
    )
    # No NAT to the outside: the containers reach each other and the host, nothing else.
    api.create_network(name, driver="bridge", options=options, labels=labels, ipam=ipam)
    taken = {ipaddress.ip_address(pool["Gateway"])}
    free = (ip for ip in ipaddress.ip_network(pool["Subnet"]).hosts() if ip not in taken)
    return [str(next(free)) for _ in range(hosts)]


def _healthcheck(interval_s: float) -> dict[str, Any]:
    nanos = int(interval_s * 1e9)
    return {
        "test": ["CMD", "bash", "-c", HEALTH_COMMAND.format(port=PORT)],
        "interval": nanos,
        "timeout": max(nanos, int(1e9)),
        "retries": 2,
        "start_period": int(30e9),
    }


def _gateway_url(client: docker.DockerClient, name: str) -> str:
    ports = client.api.inspect_container(name)["NetworkSettings"]["Ports"]
    binding = (ports.get(f"{PORT}/tcp") or [{}])[0]
    if not binding.get("HostPort"):
        raise EmbeddedSystemError(f"the gateway's port {PORT} was not published")
    return f"http://127.0.0.1:{binding['HostPort']}"


def _wait_healthy(client: docker.DockerClient, state: DockerShopState, deadline: float) -> None:
    pending = dict(state.containers)
    while pending:
        for instance, name in list(pending.items()):
            info = client.api.inspect_container(name)
            if (info["State"].get("Health") or {}).get("Status") == "healthy":
                pending.pop(instance)
            elif info["State"]["Status"] in ("exited", "dead") and not info["State"]["Restarting"]:
                raise EmbeddedSystemError(
                    f"{instance} exited with code {info['State']['ExitCode']}; log tail:\n"
                    + _log_tail(client, name)
                )
        if pending and time.monotonic() > deadline:
            tails = "\n".join(f"--- {i} ---\n{_log_tail(client, n)}" for i, n in pending.items())
            raise EmbeddedSystemError(f"not healthy in time: {sorted(pending)}\n{tails}")
        time.sleep(0.1)


def _wait_running(client: docker.DockerClient, name: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while client.api.inspect_container(name)["State"]["Status"] != "running":
        if time.monotonic() > deadline:
            raise EmbeddedSystemError(f"{name} not running after {timeout_s}s")
        time.sleep(0.05)


# --- state and logs ---


def _process(client: docker.DockerClient, state: DockerShopState, instance: str) -> ServiceProcess:
    service = state.services[instance]
    try:
        info = client.api.inspect_container(state.containers[instance])
    except NotFound:
        return ServiceProcess(service, instance, None, "removed")
    status = str(info["State"]["Status"])
    pid = int(info["State"].get("Pid") or 0) if status == "running" else 0
    return ServiceProcess(service, instance, pid or None, _STATES.get(status, status))


def _log_tail(client: docker.DockerClient, name: str, lines: int = 20) -> str:
    try:
        return client.api.logs(name, tail=lines).decode(errors="replace")
    except (APIError, NotFound):
        return "(no log)"


def _save_logs(client: docker.DockerClient, state: DockerShopState, logs_dir: Path) -> None:
    logs_dir.mkdir(parents=True, exist_ok=True)
    for instance, name in state.containers.items():
        with contextlib.suppress(APIError, NotFound):
            (logs_dir / f"{instance}.log").write_bytes(client.api.logs(name, timestamps=True))
