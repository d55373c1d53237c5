"""What a Docker fault keeps beside the fault ledger: the lock held while it acts, and the
environment values of the containers it removes.

Both files are named by the fault's *operation id* (``undo.operation.id`` of its record),
not by the record id: they must exist before the record that names them is written (the
lock) or be written by the act itself (the secrets), and the record id is only known once
the record is written. The record carries their absolute paths, so a reverter running in
``inoculate recover`` finds them from the record alone. The revert that settles the record
deletes them.

``<ledger>.acting/<operation>.lock``
    Exclusively ``flock``-ed by the injecting process from before the record is written
    until its act returns, then deleted if the act succeeded. A revert takes the same lock
    first (:func:`await_act`), so it never undoes a fault whose act is still sending
    requests — a ``docker stop`` of a container that ignores SIGTERM takes its whole stop
    timeout, and a rollback or ``recover`` running meanwhile would see "running", settle,
    and then watch the stop land. The kernel releases the lock of a process that dies (even
    by SIGKILL); a lock file still there after the act then tells the revert that the act
    ended half-way, so a request it sent may still be in the daemon.
``<ledger>.secrets/<operation>.json``
    Mode 0600 in a 0700 directory: for each removed container (by id), the environment
    entries (``KEY=value``) it set itself — the ones its image does not provide. The ledger
    (and the run's ``faults.jsonl``) keeps only the variables' names and which of them come
    from the image, so secrets passed in a container's environment never land there.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from inoculate.model.errors import FaultError

__all__ = [
    "ACT_MARGIN_S",
    "ActLock",
    "Operation",
    "await_act",
    "discard",
    "read_secrets",
    "write_secrets",
]

T = TypeVar("T")
# Slack on top of a fault's own worst case before a revert calls its act stuck: the daemon
# and the runner share 2 busy cores in CI.
ACT_MARGIN_S = 10.0


@dataclass(frozen=True)
class Operation:
    """One injection of a Docker fault: its id, its side files and how long it may take.

    ``lands_within_s`` bounds how long after its request the daemon (or, for a signal, the
    container's process) can still change one container; ``lands_after_act`` says that the
    change may land even after the act returned (a signal the process handles in its own
    time), not only when the act ended half-way.
    """

    id: str
    lock: Path
    lands_within_s: float
    lands_after_act: bool = False
    secrets: Path | None = None

    @classmethod
    def new(
        cls,
        ledger_path: Path,
        lands_within_s: float,
        lands_after_act: bool = False,
        with_secrets: bool = False,
    ) -> Operation:
        """A fresh operation whose files live beside the ledger at ``ledger_path``."""
        ledger_path = Path(ledger_path).resolve()
        op_id = uuid.uuid4().hex
        secrets = _beside(ledger_path, "secrets") / f"{op_id}.json" if with_secrets else None
        lock = _beside(ledger_path, "acting") / f"{op_id}.lock"
        return cls(op_id, lock, float(lands_within_s), lands_after_act, secrets)

    def to_json(self) -> dict[str, Any]:
        """The record's ``undo.operation``."""
        data: dict[str, Any] = {
            "id": self.id,
            "lock": str(self.lock),
            "lands_within_s": self.lands_within_s,
            "lands_after_act": self.lands_after_act,
        }
        if self.secrets is not None:
            data["secrets"] = str(self.secrets)
        return data

    @classmethod
    def from_undo(cls, undo: Mapping[str, Any]) -> Operation | None:
        """The operation of a record (None for records written before operations existed)."""
        data = undo.get("operation")
        if not isinstance(data, Mapping):
            return None
        secrets = data.get("secrets")
        return cls(
            str(data["id"]),
            Path(str(data["lock"])),
            float(data.get("lands_within_s") or 0.0),
            bool(data.get("lands_after_act")),
            Path(str(secrets)) if secrets else None,
        )


def _beside(ledger_path: Path, what: str) -> Path:
    return ledger_path.with_name(f"{ledger_path.name}.{what}")


class ActLock:
    """Held from before a fault's record is written until its act returns (``with``).

    Run the act through :meth:`run`. On leaving, the lock file is deleted when the act
    succeeded — or never started — and kept otherwise: an act that raised (an API timeout,
    the activity's timeout) may have left a request in the daemon, as a dead one may.
    """

    def __init__(self, operation: Operation) -> None:
        self.operation = operation
        self._fd: int | None = None
        self._started = False

    def __enter__(self) -> ActLock:
        self.operation.lock.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fd = os.open(self.operation.lock, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # a fresh file: nobody else holds it
        return self

    def run(self, act: Callable[[], T]) -> T:
        """Run the act (inside ``inject``), noting that it started."""
        self._started = True
        return act()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None or not self._started:
            # Unlink before unlocking: a revert waiting on the lock then sees a deleted
            # file, which is how it knows that the act completed.
            with contextlib.suppress(FileNotFoundError):
                self.operation.lock.unlink()
        if self._fd is not None:
            os.close(self._fd)


def await_act(operation: Operation | None, containers: int, injected_at: float) -> bool:
    """Wait until no process is acting on ``operation``; return whether its act completed.

    False means it ended half-way (it raised, or its process died): a request it sent may
    still be landing. Raises :class:`FaultError` when the act still runs past its worst
    case (its process is alive but stuck): the record must then stay outstanding.
    """
    if operation is None:
        return True  # a record written before operations existed: nothing to wait for
    try:
        fd = os.open(operation.lock, os.O_RDONLY)
    except FileNotFoundError:
        return True  # the act completed and deleted its lock
    try:
        worst = max(1, containers) * operation.lands_within_s + ACT_MARGIN_S
        deadline = max(injected_at + worst, time.time() + 1.0)
        while not _try_lock(fd):
            if time.time() > deadline:
                raise FaultError(
                    f"the fault's action still runs after {worst:.0f}s (it holds "
                    f"{operation.lock}); its effect may still land, so it is not reverted "
                    "yet: let it finish (or stop its process), then run `inoculate recover`"
                )
            time.sleep(0.05)
        return os.fstat(fd).st_nlink == 0
    finally:
        os.close(fd)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def write_secrets(path: Path, values: Mapping[str, Any]) -> None:
    """Write ``values`` durably to ``path``, readable by this user only (0600)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    try:
        os.write(fd, json.dumps(dict(values), sort_keys=True).encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)
    # The container is removed right after: its environment must be on disk first.
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def read_secrets(path: Path | None) -> dict[str, Any]:
    """The values :func:`write_secrets` stored ({} when there is no such file)."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise FaultError(f"cannot read the removed containers' environment {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def discard(operation: Operation | None) -> None:
    """Delete the operation's files: its record is being settled."""
    if operation is None:
        return
    for path in (operation.lock, operation.secrets):
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
