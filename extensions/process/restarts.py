"""Bringing back a process inoculate killed: what a kill records, and starting it again.

A process that no supervisor of ours runs (``pattern:`` targets — nginx, redis, a team's own
service) comes back only if someone starts it. Before a pattern kill acts, each process's
command line, working directory, user and parent are recorded, and the names (never the
values) of its environment variables. The undo starts again the processes whose parent was
not killed too (nginx's master, not its workers), each:

- with ``restart_command`` when the experiment declares one (on the kill, or on the
  ``ensure_running`` rollback) — always right, and the only way for a process that rewrote
  its own command line (``nginx: master process ...``);
- else with its recorded command line, when that still names an executable;
- else not at all: the revert fails, saying to declare ``restart_command``.

A restarted process runs in a session of its own with the environment of whoever restarts
it (the rollback's runner, or ``inoculate recover``); the variable names the original had
and that environment lacks are reported. Its output goes to ``restarted-<record>-<n>.log``
in the run directory (else in ``.inoculate/``). It is *ready* once ``wait_for`` says so — a TCP
port accepts, a URL answers below 500, or a process matches a pattern — or, without it, once
a live process matches the kill's pattern and listens on every TCP port the killed ones
listened on (so a restart that dies on ``bind()`` is a failed revert, not a recovery).
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil
import requests

from inoculate.model.errors import FaultError
from inoculate.model.processes import is_alive

__all__ = [
    "READY_TIMEOUT_S",
    "alive",
    "describe_for_restart",
    "listening_ports",
    "missing_environment",
    "ports_listened",
    "restart_argv",
    "start_process",
    "wait_ready",
    "wait_restarted",
]

READY_TIMEOUT_S = 10.0


def describe_for_restart(pid: int) -> dict[str, Any]:
    """What it takes to start ``pid`` again (recorded before it is killed)."""
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            described: dict[str, Any] = {
                "cmdline": process.cmdline(),
                "exe": _or_none(process.exe),
                "cwd": _or_none(process.cwd),
                "user": _or_none(process.username),
                "ppid": process.ppid(),
                "env_names": sorted(_or_none(process.environ) or {}),
                "listening": listening_ports(pid),
            }
    except psutil.NoSuchProcess:
        return {}
    return described


def listening_ports(pid: int) -> list[int]:
    """The TCP ports ``pid`` listens on (empty when it listens on none, or is gone)."""
    try:
        connections = psutil.Process(pid).net_connections(kind="inet")
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return []
    return sorted({c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN})


def ports_listened(pids: Sequence[int]) -> set[int]:
    """Every TCP port any of ``pids`` listens on."""
    return {port for pid in pids for port in listening_ports(pid)}


def wait_restarted(
    started: Sequence[tuple[subprocess.Popen[bytes], Path]],
    ready: Any,
    what: str,
    timeout_s: float = READY_TIMEOUT_S,
) -> None:
    """Wait until ``ready()``; raise :class:`FaultError` naming the cause when a started
    process exits with an error first (its exit code and log), or on timeout. A launcher
    that exits 0 (a daemon that forked) is waited past: readiness decides."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        for process, log in started:
            code = process.poll()
            if code:
                raise FaultError(
                    f"pid {process.pid} exited with code {code} before it was ready "
                    f"({what}); its output is in {log}"
                )
        if time.monotonic() > deadline:
            logs = ", ".join(str(log) for _, log in started)
            raise FaultError(f"not ready after {timeout_s:g}s: waited for {what}; output in {logs}")
        time.sleep(0.05)


def _or_none(read: Any) -> Any:
    try:
        return read()
    except (psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return None


def restart_argv(recorded: Mapping[str, Any]) -> list[str] | None:
    """The argv that starts a recorded process again, or None when its command line no
    longer names an executable (the process rewrote it)."""
    argv = [str(arg) for arg in recorded.get("cmdline") or []]
    if not argv:
        return None
    program = argv[0]
    if os.sep in program:
        return argv if Path(program).is_file() and os.access(program, os.X_OK) else None
    return argv if shutil.which(program) else None


def start_process(
    command: Sequence[str] | str,
    cwd: str | None,
    log: Path,
    user: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``command`` in a session of its own (it outlives whoever started it)."""
    argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    if not argv:
        raise FaultError("an empty command cannot be started")
    log.parent.mkdir(parents=True, exist_ok=True)
    as_user = user if user and os.geteuid() == 0 and user != _current_user() else None
    with open(log, "ab") as output:
        try:
            return subprocess.Popen(
                argv,
                cwd=cwd or None,
                user=as_user,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise FaultError(f"cannot start {shlex.join(argv)}: {exc}") from exc


def _current_user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def missing_environment(recorded: Mapping[str, Any]) -> list[str]:
    """Variable names the original process had that this environment does not."""
    return sorted(set(recorded.get("env_names") or ()) - set(os.environ))


def wait_ready(
    wait_for: Mapping[str, Any],
    timeout_s: float,
    process: subprocess.Popen[bytes] | None = None,
    matches: Any = None,
) -> str:
    """Wait until ``wait_for`` holds (``port``, ``url`` or ``pattern``); with nothing to wait
    for, until ``matches()`` finds a live process. Raise :class:`FaultError` on timeout or
    when the started process exits first."""
    deadline = time.monotonic() + timeout_s
    check, what = _readiness(wait_for, matches)
    while True:
        if check():
            return what
        if process is not None and process.poll() is not None and not wait_for:
            raise FaultError(f"the restarted process exited with code {process.returncode}")
        if time.monotonic() > deadline:
            raise FaultError(f"not ready after {timeout_s:g}s: waited for {what}")
        time.sleep(0.05)


def _readiness(wait_for: Mapping[str, Any], matches: Any) -> tuple[Any, str]:
    if "port" in wait_for:
        host, port = str(wait_for.get("host", "127.0.0.1")), int(wait_for["port"])
        return (lambda: _accepts(host, port)), f"{host}:{port} to accept connections"
    if "url" in wait_for:
        url = str(wait_for["url"])
        return (lambda: _answers(url)), f"{url} to answer"
    if "pattern" in wait_for:
        from inoculate.extensions.process.targets import match_pattern

        pattern = str(wait_for["pattern"])
        return (lambda: bool(match_pattern(pattern))), f"a process matching {pattern!r}"
    if matches is not None:
        return matches, "a live process matching the target"
    raise FaultError("wait_for must be {port: N}, {url: U} or {pattern: P}")


def _accepts(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    return True


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1.0, allow_redirects=False).status_code < 500
    except requests.RequestException:
        return False


def alive(recorded: Mapping[str, Any]) -> bool:
    """Whether the recorded process itself still lives."""
    return is_alive(int(recorded.get("pid") or 0), recorded.get("create_time"))
