"""Fixtures and helpers of the tests that need a real Docker daemon.

``docker_client`` skips the test with the reason when no daemon answers — except under
``CI=true``, where a missing daemon is a failure (CI installs and starts dockerd: a Docker
test that silently skipped there would prove nothing). Everything a test creates carries
the label ``inoculate.run=<id>`` and is removed after the test, whatever happened.

Import the fixtures into a test module (``from tests.docker_support import
docker_run_fixture``); they are registered under their short names (``docker_run``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import DockerException, NotFound

from inoculate.demo.shop_docker.image import image_tag
from tests.support import REPO

RUN_LABEL = "inoculate.run"
BUILD_SCRIPT = REPO / "deploy" / "docker" / "build_offline_image.py"
# PID 1 that exits on SIGTERM (docker stop) and costs nothing while it waits.
IDLE_COMMAND = ["bash", "-c", "trap 'exit 0' TERM; sleep infinity & wait"]
# PID 1 that ignores SIGTERM: `docker stop` takes its whole timeout, then SIGKILLs it.
DEAF_COMMAND = ["bash", "-c", "trap '' TERM; sleep infinity & wait"]
# PID 1 that exits 2 s after a SIGTERM, as a service draining its requests would.
SLOW_EXIT_COMMAND = ["bash", "-c", "trap 'sleep 2; exit 0' TERM; sleep infinity & wait"]
SERVE_CATALOG = [
    "python3",
    "-m",
    "inoculate.demo.shop_docker.serve",
    "catalog",
    "--instance",
    "probe",
]
HEALTHCHECK = {
    "test": [
        "CMD",
        "bash",
        "-c",
        "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3"
        " && head -c 12 <&3 | grep -q ' 200'",
    ],
    "interval": int(0.5e9),
    "timeout": int(1e9),
    "retries": 2,
    "start_period": int(20e9),
}


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} — CI=true, so the Docker tests must run: .ci/run starts dockerd")
    pytest.skip(f"{reason}; start dockerd (see .ci/run) to run the Docker tests")


@pytest.fixture(name="docker_client", scope="session")
def docker_client_fixture() -> Iterator[docker.DockerClient]:
    """A client of the local daemon; skip (or, with CI=true, fail) when there is none."""
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except DockerException as exc:
        _unavailable(f"no reachable Docker daemon ({exc})")
    yield client
    client.close()


@pytest.fixture(name="shop_image", scope="session")
def shop_image_fixture(docker_client: docker.DockerClient) -> str:
    """The shop's offline image of this checkout, built (from the cache) when missing."""
    tag = image_tag()
    if not docker_client.images.list(name=tag):
        built = subprocess.run(
            [sys.executable, str(BUILD_SCRIPT)], capture_output=True, text=True, check=False
        )
        if built.returncode != 0:
            pytest.fail(f"building {tag} failed:\n{built.stdout}\n{built.stderr}")
    return tag


@dataclass
class DockerRun:
    """Containers and networks of one test, all labelled ``inoculate.run=<id>``."""

    client: docker.DockerClient
    image: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    @property
    def label(self) -> str:
        """``inoculate.run=<id>``: selects everything of this test."""
        return f"{RUN_LABEL}={self.run_id}"

    def name(self, suffix: str) -> str:
        """A container or network name unique to this test."""
        return f"inoculate-test-{self.run_id}-{suffix}"

    def network(self, suffix: str = "net") -> str:
        """Create a bridge network (no route out); return its name."""
        name = self.name(suffix)
        self.client.api.create_network(
            name,
            driver="bridge",
            options={"com.docker.network.bridge.enable_ip_masquerade": "false"},
            labels={RUN_LABEL: self.run_id},
        )
        return name

    def container(
        self,
        suffix: str,
        command: list[str] | None = None,
        labels: dict[str, str] | None = None,
        network: str | None = None,
        aliases: list[str] | None = None,
        healthcheck: dict[str, Any] | None = None,
        restart_policy: str = "no",
        environment: dict[str, str] | None = None,
        ports: list[int] | None = None,
        **host_config: Any,
    ) -> str:
        """Create and start a container; return its name."""
        api = self.client.api
        name = self.name(suffix)
        networking = None
        if network:
            endpoint = api.create_endpoint_config(aliases=aliases)
            networking = api.create_networking_config({network: endpoint})
        api.create_container(
            self.image,
            command=command or IDLE_COMMAND,
            name=name,
            labels={RUN_LABEL: self.run_id, **(labels or {})},
            environment=environment,
            ports=ports,
            healthcheck=healthcheck,
            host_config=api.create_host_config(
                restart_policy={"Name": restart_policy, "MaximumRetryCount": 0},
                network_mode=network,
                **host_config,
            ),
            networking_config=networking,
        )
        api.start(name)
        return name

    def inspect(self, name: str) -> dict[str, Any]:
        """``docker inspect`` of a container."""
        return self.client.api.inspect_container(name)

    def exists(self, name: str) -> bool:
        """Whether a container of that name exists."""
        try:
            self.client.api.inspect_container(name)
        except NotFound:
            return False
        return True

    def remove_all(self) -> None:
        """Remove every container and network of this test."""
        api = self.client.api
        for item in api.containers(all=True, filters={"label": [self.label]}):
            with contextlib.suppress(NotFound):
                api.remove_container(item["Id"], force=True, v=True)
        for network in api.networks(filters={"label": [self.label]}):
            with contextlib.suppress(NotFound):
                api.remove_network(network["Id"])


@pytest.fixture(name="docker_run")
def docker_run_fixture(docker_client: docker.DockerClient, shop_image: str) -> Iterator[DockerRun]:
    """A labelled space for one test's containers; everything in it is removed afterwards."""
    run = DockerRun(docker_client, shop_image)
    try:
        yield run
    finally:
        run.remove_all()
    leftovers = docker_client.api.containers(all=True, filters={"label": [run.label]})
    assert not leftovers, f"containers left behind: {[c['Names'] for c in leftovers]}"


def eventually(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll ``check`` until truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.05)


def cgroup_value(container_id: str, controller: str, name: str) -> str | None:
    """A cgroup v1 value of a container (None where the layout differs, e.g. cgroup v2)."""
    path = Path("/sys/fs/cgroup") / controller / "docker" / container_id / name
    try:
        return path.read_text().strip()
    except OSError:
        return None
