"""A real Prometheus (Debian's ``prometheus`` package) for the demos and the tests: started on
loopback with its own config and data directory, scraping given targets every second.

``make demo-canary`` reads the shop's SLIs from it; the tests start one per test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from inoculate.model.errors import RunSetupError
from inoculate.steady_state.prometheus import PrometheusClient, PrometheusSource

__all__ = ["START_TIMEOUT_S", "PrometheusServer", "prometheus_binary", "start_prometheus"]

START_TIMEOUT_S = 30.0


def prometheus_binary() -> str | None:
    """The ``prometheus`` on the PATH, or None."""
    return shutil.which("prometheus")


@dataclass
class PrometheusServer:
    """A Prometheus process on loopback with its own config and data directory."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        """Its base URL."""
        return f"http://127.0.0.1:{self.port}"

    def client(self, timeout_s: float = 2.0) -> PrometheusClient:
        """A query client for it."""
        return PrometheusClient(PrometheusSource(url=self.url, timeout_s=timeout_s))

    def stop(self) -> None:
        """Stop it (thawed first if it was frozen)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGCONT)
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_prometheus(
    root: Path, jobs: dict[str, list[str]], port: int | None = None
) -> PrometheusServer:
    """Start Prometheus scraping ``jobs`` (name → host:port targets) every second, on
    127.0.0.1:``port`` (a free one by default), with its config and data under ``root``;
    return once it is ready. Raises :class:`RunSetupError` when it cannot start."""
    binary = prometheus_binary()
    if binary is None:
        raise RunSetupError("prometheus is not installed (apt-get install prometheus)")
    root.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": name, "static_configs": [{"targets": targets}]}
            for name, targets in jobs.items()
        ],
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = port or _kernel_port()
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
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _ready(server):
            if time.monotonic() > deadline:
                raise RunSetupError(f"Prometheus not ready after {START_TIMEOUT_S:g} s ({log})")
            time.sleep(0.1)
    except BaseException:
        server.stop()
        raise
    return server


def _kernel_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(server: PrometheusServer) -> bool:
    if server.process.poll() is not None:
        raise RunSetupError(f"Prometheus exited: {server.log.read_text()[-2000:]}")
    try:
        if requests.get(f"{server.url}/-/ready", timeout=1).status_code != 200:
            return False
        flags = requests.get(f"{server.url}/api/v1/status/flags", timeout=1).json()["data"]
    except requests.RequestException:
        return False
    # The server on the port must be this one, not another that holds the port.
    ours = str(server.log.parent / "prometheus.yml")
    if flags.get("config.file") != ours:
        raise RunSetupError(f"{server.url} is another Prometheus ({flags.get('config.file')})")
    return True
