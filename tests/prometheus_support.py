"""A real Prometheus (Debian's package) for tests: started on loopback with its own config and
data directory, scraping given targets every second, stopped even when a test fails.

Without the ``prometheus`` binary the tests that need it skip, except under CI=true, where
they fail (.ci/run installs it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import yaml

from inoculate.steady_state.prometheus import PrometheusClient, PrometheusSource
from tests.support import wait_for

__all__ = [
    "PrometheusServer",
    "free_port",
    "host_port",
    "require_prometheus",
    "start_prometheus",
]

PROMETHEUS = shutil.which("prometheus")
START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_prometheus() -> str:
    if PROMETHEUS is None:
        if os.environ.get("CI") == "true":
            pytest.fail("prometheus is not installed (.ci/run installs Debian's prometheus)")
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    return PROMETHEUS


@dataclass
class PrometheusServer:
    """A Prometheus process on loopback with its own config and data directory."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, timeout_s: float = 2.0) -> PrometheusClient:
        return PrometheusClient(PrometheusSource(url=self.url, timeout_s=timeout_s))

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGCONT)
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_prometheus(root: Path, jobs: dict[str, list[str]]) -> PrometheusServer:
    """Start Prometheus scraping ``jobs`` (name → host:port targets) every second."""
    binary = require_prometheus()
    root.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": name, "static_configs": [{"targets": targets}]}
            for name, targets in jobs.items()
        ],
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = root / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, f"--config.file={root / 'prometheus.yml'}",
             f"--storage.tsdb.path={root / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
             "--log.level=warn"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    server = PrometheusServer(process, port, log)
    try:
        wait_for(lambda: _ready(server), START_TIMEOUT_S, f"Prometheus ready ({log})")
    except BaseException:
        server.stop()
        raise
    return server


def _ready(server: PrometheusServer) -> bool:
    if server.process.poll() is not None:
        raise AssertionError(f"Prometheus exited: {server.log.read_text()[-2000:]}")
    try:
        return requests.get(f"{server.url}/-/ready", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def host_port(url: str) -> str:
    return urlsplit(url).netloc
