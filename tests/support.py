"""Test support: run the ``inoculate`` command for real, with a private ledger and run folder."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments" / "shop"


@dataclass
class CliResult:
    """What one ``inoculate`` invocation did."""

    code: int
    stdout: str
    stderr: str
    out_dir: Path

    def run_dir(self) -> Path:
        """The single run directory this invocation created."""
        dirs = [p for p in self.out_dir.iterdir() if p.is_dir()]
        assert len(dirs) == 1, f"expected one run directory in {self.out_dir}, found {dirs}"
        return dirs[0]

    def summary(self) -> dict[str, Any]:
        """The run's summary.json."""
        return json.loads((self.run_dir() / "summary.json").read_text())

    def journal(self) -> dict[str, Any]:
        """The run's journal.json (must be valid JSON)."""
        return json.loads((self.run_dir() / "journal.json").read_text())


@dataclass
class Workspace:
    """A private ledger and run folder; commands run from the repository root."""

    root: Path

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.jsonl"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "INOCULATE_LEDGER": str(self.ledger),
            # Tests run the repository's experiments: they must not rewrite its runbooks.
            "INOCULATE_RUNBOOK_FEEDBACK": "off",
            "PYTHONUNBUFFERED": "1",
        }

    def out_dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(exist_ok=True)
        return path

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "inoculate.cli", *args]

    def run(self, *args: str, out: str = "runs", timeout: float = 240) -> CliResult:
        """Run ``inoculate ARGS`` (``run`` gets ``--out``) and wait for it."""
        out_dir = self.out_dir(out)
        extra = ["--out", str(out_dir)] if args and args[0] == "run" else []
        completed = subprocess.run(
            self.command(*args, *extra),
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return CliResult(completed.returncode, completed.stdout, completed.stderr, out_dir)

    def start(self, *args: str, out: str = "runs") -> tuple[subprocess.Popen[str], Path]:
        """Start ``inoculate ARGS --out DIR`` in the background."""
        out_dir = self.out_dir(out)
        process = subprocess.Popen(
            self.command(*args, "--out", str(out_dir)),
            cwd=REPO,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return process, out_dir

    def outstanding_faults(self) -> list[dict[str, Any]]:
        """Ledger entries injected and never reverted."""
        from inoculate.faults.ledger import FaultLedger

        return [r.to_json() for r in FaultLedger(self.ledger).outstanding()]


def processes_under(path: Path) -> list[psutil.Process]:
    """Processes whose command line mentions ``path`` (shop, Locust, runner of a test)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(path) in cmdline and proc.pid != os.getpid():
            found.append(proc)
    return found


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def assert_no_fault_remains(workspace: Workspace, summary: dict[str, Any]) -> None:
    """Ledger empty, every fault reverted, and every system process running after rollbacks."""
    assert workspace.outstanding_faults() == []
    assert summary["faults_left"] == []
    for fault in summary["faults"]:
        assert fault["reverted_at"] is not None, fault
    at_end = summary["system_at_end"]
    assert at_end, "the run recorded no system state after its rollbacks"
    for instance, status in at_end.items():
        assert status in (
            psutil.STATUS_RUNNING,
            psutil.STATUS_SLEEPING,
            psutil.STATUS_DISK_SLEEP,
        ), (
            instance,
            status,
        )


def kill_quietly(proc: psutil.Process) -> None:
    try:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
    except psutil.Error:
        pass


# Ports for servers the tests start. A port from the kernel (bind to port 0) is free only
# until it is handed out again, and the kernel hands the same ports to every pytest worker
# and to the product's own servers: two workers' servers raced for one port in CI, and a test
# talked to the other worker's Prometheus. Each worker takes ports from its own slice below
# the kernel's ephemeral range (32768-60999), which nothing else here binds.
_PORT_BASE, _PORT_SLICE, _SLICES = 20000, 1500, 8


def _worker_slice() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) % _SLICES if worker.startswith("gw") else _SLICES - 1
    start = _PORT_BASE + index * _PORT_SLICE
    return range(start, start + _PORT_SLICE)


_PORTS = _worker_slice()
_NEXT_PORT = itertools.count(random.randrange(len(_PORTS)))


def free_port() -> int:
    """A loopback TCP port no other test worker is handed, free when asked."""
    for _ in range(len(_PORTS)):
        port = _PORTS[next(_NEXT_PORT) % len(_PORTS)]
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port left in {_PORTS}")


def git_status() -> str:
    """The checkout's ``git status``, untracked files included (a demo must leave it as is)."""
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
