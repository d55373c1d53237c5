"""How the framework starts, drives and stops the shop (no global state: all from state_dir).

Exceptions::

    ShopError
    ├── ShopStartError     the shop did not come up (names the instance, with its log tail)
    └── ShopControlError   the supervisor's control API refused or did not answer
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import requests

from inoculate.demo.shop.knobs import ShopKnobs
from inoculate.demo.shop.processes import child_env, module_command
from inoculate.demo.shop.state import (
    LOGS_DIR_NAME,
    STATE_FILE_NAME,
    InstanceState,
    ShopState,
    read_state,
)

__all__ = [
    "ShopControlError",
    "ShopError",
    "ShopHandle",
    "ShopStartError",
    "ShopState",
    "is_alive",
    "log_tail",
    "read_state",
    "restart_instance",
    "start_instance",
    "start_shop",
]

SUPERVISOR_LOG_NAME = "supervisor.log"
_POLL_S = 0.05
_RETRY_START_S = 0.5


class ShopError(Exception):
    """Base of the shop client's errors."""


class ShopStartError(ShopError):
    """The shop did not come up; the message names the instance and quotes its log."""


class ShopControlError(ShopError):
    """The supervisor's control API refused a request or did not answer."""


class ShopHandle:
    """A running shop started by :func:`start_shop`."""

    def __init__(self, state_dir: Path, supervisor: subprocess.Popen[bytes]) -> None:
        self.state_dir = state_dir
        self.supervisor = supervisor

    @property
    def gateway_url(self) -> str:
        """Base URL of the gateway (the shop's entry point)."""
        return self.state().gateway_url

    @property
    def url(self) -> str:
        """Same as :attr:`gateway_url` (what load is sent to)."""
        return self.gateway_url

    def state(self) -> ShopState:
        """Read the current ``state.json``."""
        return read_state(self.state_dir)

    def stop(self, timeout_s: float = 10) -> None:
        """SIGTERM the supervisor, SIGKILL after ``timeout_s``; leave no shop process behind."""
        leftovers = _shop_processes(self.state_dir, self.supervisor.pid)
        if self.supervisor.poll() is None:
            self.supervisor.send_signal(signal.SIGTERM)
            try:
                self.supervisor.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.supervisor.kill()
                self.supervisor.wait()
        # Normally the supervisor stopped them all; after its SIGKILL the kernel did
        # (PR_SET_PDEATHSIG). Make sure either way, without touching recycled pids.
        for process in leftovers:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        deadline = time.monotonic() + timeout_s
        while any(is_alive(p) for p in leftovers) and time.monotonic() < deadline:
            time.sleep(_POLL_S)

    def __enter__(self) -> ShopHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_shop(
    state_dir: Path, knobs: ShopKnobs, timeout_s: float = 20, tie_to_caller: bool = False
) -> ShopHandle:
    """Start the supervisor in ``state_dir``; return once every instance answers /health.

    With ``tie_to_caller`` the whole shop is SIGKILLed by the kernel when the calling
    process dies, even by SIGKILL, so a crashed experiment runner leaves no shop behind.
    """
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    # A state.json left by an earlier shop would be read as this one's.
    (state_dir / STATE_FILE_NAME).unlink(missing_ok=True)
    command = module_command(
        "inoculate.demo.shop",
        "--state-dir",
        str(state_dir),
        "--knobs-json",
        knobs.model_dump_json(),
    )
    if tie_to_caller:
        command += ["--die-with-parent", str(os.getpid())]
    with open(state_dir / SUPERVISOR_LOG_NAME, "ab") as log:
        supervisor = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env(),
            # Own session: a Ctrl-C meant for the caller's process group is not the shop's.
            start_new_session=True,
        )
    handle = ShopHandle(state_dir, supervisor)
    try:
        _wait_until_healthy(handle, time.monotonic() + timeout_s)
    except BaseException:
        handle.stop()
        raise
    return handle


def start_instance(state_dir: Path, instance: str, wait_s: float = 10.0) -> InstanceState:
    """Start ``instance`` if it is not running (whatever the restart knob); wait until healthy."""
    _control(state_dir, instance, "start")
    return _wait_running(state_dir, instance, wait_s, old_pid=None)


def restart_instance(state_dir: Path, instance: str, wait_s: float = 10.0) -> InstanceState:
    """Restart ``instance`` through the supervisor; wait until a new process is healthy."""
    old_pid = read_state(state_dir).instance(instance).pid
    _control(state_dir, instance, "restart")
    return _wait_running(state_dir, instance, wait_s, old_pid=old_pid)


def log_tail(state_dir: Path, instance: str, lines: int = 20) -> str:
    """Return the last lines of an instance's log (``supervisor`` for the supervisor's)."""
    name = SUPERVISOR_LOG_NAME if instance == "supervisor" else f"{LOGS_DIR_NAME}/{instance}.log"
    try:
        text = (state_dir / name).read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _control(state_dir: Path, instance: str, action: str) -> None:
    url = f"{read_state(state_dir).control_url}/services/{instance}/{action}"
    try:
        answer = requests.post(url, timeout=10)
    except requests.RequestException as exc:
        raise ShopControlError(f"{action} {instance}: supervisor unreachable at {url}") from exc
    if answer.status_code != 200:
        raise ShopControlError(f"{action} {instance}: {answer.status_code} {answer.text}")


def _wait_running(
    state_dir: Path, instance: str, wait_s: float, old_pid: int | None
) -> InstanceState:
    deadline = time.monotonic() + wait_s
    asked_at = time.monotonic()
    current = read_state(state_dir).instance(instance)
    while time.monotonic() < deadline:
        current = read_state(state_dir).instance(instance)
        if current.state == "running" and current.pid not in (None, old_pid):
            return current
        if current.state == "exited" and time.monotonic() - asked_at > _RETRY_START_S:
            # The request raced with the supervisor noticing the exit (it saw the old
            # process still running and did nothing): ask again.
            _control(state_dir, instance, "start")
            asked_at = time.monotonic()
        time.sleep(_POLL_S)
    raise ShopControlError(
        f"{instance} is not running after {wait_s} s (state {current.state});"
        f" log tail:\n{log_tail(state_dir, instance)}"
    )


def _wait_until_healthy(handle: ShopHandle, deadline: float) -> None:
    """Poll state.json and each instance's /health until all answer or the deadline passes."""
    unhealthy: list[str] = ["supervisor"]
    while time.monotonic() < deadline:
        code = handle.supervisor.poll()
        if code is not None:
            raise ShopStartError(
                f"the shop supervisor exited with code {code}; log tail:\n"
                f"{log_tail(handle.state_dir, 'supervisor')}"
            )
        with contextlib.suppress(FileNotFoundError):
            state = handle.state()
            unhealthy = [i.instance for i in state.services.values() if not _healthy(i)]
            if not unhealthy:
                return
        time.sleep(_POLL_S)
    tails = "\n".join(f"--- {name} ---\n{log_tail(handle.state_dir, name)}" for name in unhealthy)
    raise ShopStartError(f"not healthy after the start timeout: {', '.join(unhealthy)}\n{tails}")


def _healthy(instance: InstanceState) -> bool:
    if instance.state != "running":
        return False
    try:
        return requests.get(f"{instance.url}/health", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def is_alive(process: psutil.Process) -> bool:
    """Whether a process still runs (a zombie waiting for its reaper does not)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _shop_processes(state_dir: Path, supervisor_pid: int) -> list[psutil.Process]:
    """The supervisor's children now, plus the pids state.json names that still run the shop."""
    found: dict[int, psutil.Process] = {}
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in psutil.Process(supervisor_pid).children(recursive=True):
            found[child.pid] = child
    with contextlib.suppress(FileNotFoundError, ValueError):
        for instance in read_state(state_dir).services.values():
            if instance.pid is None or instance.pid in found:
                continue
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(instance.pid)
                # A dead instance's pid may have been recycled: only take a shop process.
                if f"inoculate.demo.shop.{instance.service}" in process.cmdline():
                    found[instance.pid] = process
    return list(found.values())
