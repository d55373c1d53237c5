"""Against a system nobody here wrote: Debian's nginx balancing two backends on loopback.

A killed backend (a process inoculate did not start) comes back from the command line its
kill recorded; nginx's master, whose command line nginx rewrites, comes back only with a
``restart_command``, and without one the rollback fails loudly and the run says the fault
was not restored — never "passed" with a backend left dead.

nginx runs from the test with its own configuration, prefix and ports; CI installs it
(.ci/run). Without it the tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests
import yaml

from inoculate.extensions import process
from inoculate.model.errors import FaultError
from tests.support import Workspace, free_port, kill_quietly, wait_for

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@dataclass
class Balancer:
    """nginx on loopback in front of two python http.server backends."""

    root: Path
    port: int
    backend_ports: tuple[int, int]
    backend_markers: tuple[str, str]
    conf: Path
    master_marker: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start_backend(self, index: int) -> subprocess.Popen[bytes]:
        folder = self.root / self.backend_markers[index]
        folder.mkdir(exist_ok=True)
        (folder / "index.html").write_text(f"backend {index}\n")
        return subprocess.Popen(
            [sys.executable, "-m", "http.server", str(self.backend_ports[index]),
             "--bind", "127.0.0.1", "--directory", str(folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def answers(self) -> bool:
        return _answers(self.url)


def _require_nginx() -> None:
    if not Path(NGINX).is_file():
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is not installed (.ci/run installs Debian's nginx)")
        pytest.skip("nginx is not installed (apt-get install nginx)")


@pytest.fixture
def balancer(tmp_path: Path) -> Iterator[Balancer]:
    _require_nginx()
    tag = uuid.uuid4().hex[:10]
    lb = Balancer(
        root=tmp_path,
        port=free_port(),
        backend_ports=(free_port(), free_port()),
        backend_markers=(f"backend-a-{tag}", f"backend-b-{tag}"),
        conf=tmp_path / f"nginx-{tag}.conf",
        master_marker=f"nginx-{tag}.conf",
    )
    (tmp_path / "logs").mkdir()
    lb.conf.write_text(f"""
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/logs/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body; proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fcgi; uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    upstream backends {{
        server 127.0.0.1:{lb.backend_ports[0]} max_fails=1 fail_timeout=5s;
        server 127.0.0.1:{lb.backend_ports[1]} max_fails=1 fail_timeout=5s;
    }}
    server {{
        listen 127.0.0.1:{lb.port};
        location / {{ proxy_pass http://backends; proxy_connect_timeout 1s; }}
    }}
}}
""")
    backends = [lb.start_backend(0), lb.start_backend(1)]
    subprocess.run([NGINX, "-c", str(lb.conf), "-p", str(tmp_path)], check=True)
    try:
        wait_for(lb.answers, 15, "nginx and its backends")
        yield lb
    finally:
        subprocess.run([NGINX, "-c", str(lb.conf), "-p", str(tmp_path), "-s", "stop"],
                       capture_output=True, check=False)  # fmt: skip
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if tag in cmdline or str(tmp_path) in cmdline:
                kill_quietly(proc)
        for backend in backends:
            backend.kill()
            backend.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False


def _alive(marker: str) -> list[int]:
    return [p["pid"] for p in process.processes_state(pattern=marker)]


def test_a_killed_backend_comes_back_from_its_recorded_command_line(
    balancer: Balancer, tmp_path: Path
) -> None:
    configuration = {"inoculate_ledger": str(tmp_path / "ledger.jsonl")}
    marker = balancer.backend_markers[0]
    [before] = _alive(marker)
    process.kill(pattern=marker, signal="SIGKILL", configuration=configuration)
    assert _alive(marker) == []
    result = process.ensure_running(pattern=marker, configuration=configuration)
    [after] = _alive(marker)
    assert after != before and result["processes"][0]["pid"] == after
    assert "started again" in result["reverted"][0]["detail"]
    wait_for(
        lambda: _answers(f"http://127.0.0.1:{balancer.backend_ports[0]}/"),
        10,
        "the restarted backend to answer",
    )
    assert balancer.answers()


def test_a_backend_that_cannot_come_back_is_reported_with_the_real_cause(
    balancer: Balancer, tmp_path: Path
) -> None:
    configuration = {"inoculate_ledger": str(tmp_path / "ledger.jsonl")}
    marker = balancer.backend_markers[0]
    process.kill(pattern=marker, signal="SIGKILL", configuration=configuration)
    # Someone else takes the port meanwhile: the recorded command line starts and dies.
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    with squatter:
        squatter.bind(("127.0.0.1", balancer.backend_ports[0]))
        squatter.listen()
        with pytest.raises(FaultError) as failed:
            process.ensure_running(pattern=marker, configuration=configuration)
    message = str(failed.value)
    assert "exited with code 1 before it was ready" in message, message
    assert f"listening on [{balancer.backend_ports[0]}]" in message, message
    assert "restarted-" in message and "declare restart_command" not in message, message
    assert not message.startswith("no process matches processes"), message


def test_nginx_rewrote_its_command_line_so_only_a_restart_command_brings_it_back(
    balancer: Balancer, tmp_path: Path
) -> None:
    configuration = {"inoculate_ledger": str(tmp_path / "ledger.jsonl")}
    master = f"nginx: master process .*{balancer.master_marker}"
    process.kill(pattern=master, signal="SIGTERM", configuration=configuration)
    wait_for(lambda: not balancer.answers() and not _alive(master), 10, "nginx to stop")
    with pytest.raises(FaultError, match="not supervised: declare restart_command"):
        process.ensure_running(pattern=master, configuration=configuration)
    assert not balancer.answers()
    restart = f"{NGINX} -c {balancer.conf} -p {tmp_path}"
    process.ensure_running(pattern=master, restart_command=restart, configuration=configuration)
    wait_for(balancer.answers, 10, "nginx back")


def _experiment(pattern: str, signal_name: str, **rollback: str) -> dict:  # type: ignore[type-arg]
    return {
        "title": "Kill a process inoculate did not start",
        "description": "No load, no system: the verdict rests on the rollback's proof.",
        "method": [{"type": "action", "name": "kill",
                    "provider": {"type": "python", "module": "inoculate.extensions.process",
                                 "func": "kill",
                                 "arguments": {"pattern": pattern, "signal": signal_name}},
                    "pauses": {"after": 1}}],
        "rollbacks": [{"type": "action", "name": "ensure-running",
                       "provider": {"type": "python", "module": "inoculate.extensions.process",
                                    "func": "ensure_running",
                                    "arguments": {"pattern": pattern, **rollback}}}],
    }  # fmt: skip


def test_a_run_that_cannot_bring_nginx_back_fails_and_says_the_fault_was_not_restored(
    workspace: Workspace, balancer: Balancer, tmp_path: Path
) -> None:
    master = f"nginx: master process .*{balancer.master_marker}"
    experiment = tmp_path / "kill-nginx.yaml"
    experiment.write_text(yaml.safe_dump(_experiment(master, "SIGTERM")))
    result = workspace.run("run", str(experiment))
    assert result.code == 1, result.stdout + result.stderr
    summary = result.summary()
    [fault] = summary["faults"]
    assert fault["restored"] is False and "no process matches" in fault["restored_detail"]
    reasons = " ".join(summary["reasons"])
    assert "rollback failed: ensure-running" in reasons
    assert "fault not restored after the rollbacks" in reasons
    assert not balancer.answers()  # the truth: nginx is down, and the verdict says so
    restart = f"{NGINX} -c {balancer.conf} -p {tmp_path}"
    again = tmp_path / "kill-nginx-with-restart.yaml"
    again.write_text(yaml.safe_dump(_experiment(master, "SIGTERM", restart_command=restart)))
    subprocess.run(restart.split(), check=True)
    wait_for(balancer.answers, 10, "nginx back")
    second = workspace.run("run", str(again), out="second")
    assert second.code == 0, second.stdout + second.stderr
    assert second.summary()["faults"][0]["restored"] is True
    assert balancer.answers()
