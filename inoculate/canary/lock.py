"""One canary per scope at a time: a file lock on one machine, a Kubernetes ``Lease`` across
machines.

A scope names what a canary may disturb (``payments``, ``eu-west-1.checkout``). Its name
becomes both a file name and part of a Kubernetes object name, so one rule serves both: at
most 63 characters, lowercase letters, digits, ``-`` and ``.``, each ``.``-separated part
starting and ending with a letter or digit (a DNS-1123 subdomain, as ``kubectl`` spells it).

- :class:`FileScopeLock`: ``flock(LOCK_EX | LOCK_NB)`` on ``<lock_dir>/<scope>.lock``. The
  kernel drops the lock when its holder dies, however it dies, so a crashed canary never
  leaves a stale lock; the file holds the holder's JSON so a refusal can say who holds it.
- :class:`LeaseScopeLock`: a ``coordination.k8s.io/v1`` ``Lease`` named
  ``inoculate-canary-<scope>``, renewed by a daemon thread every third of its duration. A
  holder that dies stops renewing and the Lease is free once ``renewTime +
  leaseDurationSeconds`` has passed (by the clock of whoever asks next: the machines' clocks
  are assumed to agree to well within the duration, as NTP keeps them). Every write names the
  ``resourceVersion`` it read, so of two canaries racing for an expired Lease one wins and the
  other gets 409 Conflict and :class:`~inoculate.model.errors.LockHeld`.

:func:`scope_lock` picks the Lease when ``KUBECONFIG`` is set, the file lock otherwise.
Neither ever waits for the lock: :meth:`ScopeLock.acquire` takes it or raises ``LockHeld``
at once (each API request is bounded by a timeout).
"""

from __future__ import annotations

import fcntl
import getpass
import json
import logging
import os
import re
import secrets
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import urllib3
from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.rest import ApiException

from inoculate.model.errors import LockHeld, RunSetupError

__all__ = [
    "LEASE_PREFIX",
    "MAX_SCOPE_CHARS",
    "FileScopeLock",
    "LeaseScopeLock",
    "LockUnavailable",
    "ScopeLock",
    "scope_lock",
    "validate_scope",
]

logger = logging.getLogger("inoculate.canary")

MAX_SCOPE_CHARS = 63
LEASE_PREFIX = "inoculate-canary-"
REQUEST_TIMEOUT_S = 10.0  # every API request is bounded (and by a third of the duration)
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_SCOPE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_MANAGED_BY = {"app.kubernetes.io/managed-by": "inoculate"}


class LockUnavailable(RunSetupError):
    """The lock could not be asked for: the lock file cannot be opened, the kubeconfig cannot
    be loaded or the API server refused or did not answer. Nobody is known to hold it; the
    message says what failed."""


def validate_scope(scope: str) -> str:
    """Return ``scope`` when it is a valid scope name; raise ``ValueError`` naming the rule."""
    if not isinstance(scope, str) or len(scope) > MAX_SCOPE_CHARS or not _SCOPE.fullmatch(scope):
        raise ValueError(
            f"invalid canary scope {scope!r}: expected at most {MAX_SCOPE_CHARS} lowercase "
            "letters, digits, '-' and '.', each '.'-separated part starting and ending with a "
            "letter or digit (e.g. 'payments' or 'eu-west-1.checkout'); it names a lock file "
            "and a Kubernetes Lease"
        )
    return scope


class ScopeLock(ABC):
    """A lock on one scope. :meth:`acquire` never waits: it takes the lock or raises
    :class:`~inoculate.model.errors.LockHeld`. Usable as a context manager."""

    scope: str

    @property
    @abstractmethod
    def holder(self) -> str:
        """Who this lock says holds the scope when it holds it (this process)."""

    @abstractmethod
    def acquire(self) -> None:
        """Take the lock now, or raise ``LockHeld`` (someone else holds it) or
        ``LockUnavailable`` (it could not be asked for)."""

    @abstractmethod
    def release(self) -> None:
        """Give the lock up; does nothing when it is not held (idempotent)."""

    @property
    def lost(self) -> str | None:
        """Why the lock was lost while held (e.g. a Lease taken over), or None."""
        return None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


# --- one machine: flock ---


class FileScopeLock(ScopeLock):
    """``flock`` on ``<lock_dir>/<scope>.lock``; the file holds its holder's JSON (user, host,
    pid, since). The file is never deleted (deleting a lock file races with its next taker);
    a released lock's file is empty."""

    def __init__(self, scope: str, lock_dir: Path) -> None:
        self.scope = validate_scope(scope)
        self.path = Path(lock_dir) / f"{scope}.lock"
        self._fd: int | None = None

    @property
    def holder(self) -> str:
        """``user@host pid N`` of this process."""
        return _file_holder(_user(), socket.gethostname(), os.getpid())

    def acquire(self) -> None:
        """Take the lock or raise ``LockHeld`` naming the holder the lock file records."""
        if self._fd is not None:
            raise RuntimeError(f"the lock of canary scope {self.scope!r} is already held")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise LockUnavailable(
                f"cannot open the lock file {self.path} of canary scope {self.scope!r}: "
                f"{exc.strerror or exc}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held = _read_record(fd)
            os.close(fd)
            raise LockHeld(
                self.scope, _record_holder(held), held.get("since"), f"lock file {self.path}"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        record = {
            "scope": self.scope,
            "user": _user(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": _iso(_now()),
        }
        # Written over the old content then cut to length: a reader sees the previous record
        # or this one, never a blank (it reads the first JSON document in the file).
        data = json.dumps(record).encode("utf-8") + b"\n"
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
        self._fd = fd

    def release(self) -> None:
        """Empty the lock file and unlock it."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the last descriptor of the open file releases the flock


def _read_record(fd: int) -> dict[str, Any]:
    """The first JSON document in the lock file, or {} when there is none (yet)."""
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", errors="replace").strip()
        record, _ = json.JSONDecoder().raw_decode(text)
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _record_holder(record: Mapping[str, Any]) -> str:
    if not record.get("pid"):
        return "another process (it has not written its name into the lock file yet)"
    return _file_holder(record.get("user", "?"), record.get("host", "?"), record["pid"])


def _file_holder(user: str, host: str, pid: object) -> str:
    return f"{user}@{host} pid {pid}"


# --- across machines: a Kubernetes Lease ---


class LeaseScopeLock(ScopeLock):
    """A ``coordination.k8s.io/v1`` Lease ``inoculate-canary-<scope>`` in ``namespace``.

    Taken by creating it, or by replacing it (with the ``resourceVersion`` read) when its
    holder let it expire; renewed every ``duration_s / 3`` by a daemon thread; deleted on
    release only while it is still ours. Losing it while held (someone took it over after
    renewals failed for a whole duration) is logged and reported by :attr:`lost`.
    """

    def __init__(
        self,
        scope: str,
        namespace: str,
        api: client.CoordinationV1Api,
        duration_s: int = 30,
    ) -> None:
        self.scope = validate_scope(scope)
        if isinstance(duration_s, bool) or not isinstance(duration_s, int) or duration_s < 3:
            raise ValueError(f"duration_s: expected whole seconds, at least 3, got {duration_s!r}")
        self.namespace = namespace
        self.name = f"{LEASE_PREFIX}{scope}"
        self.api = api
        self.duration_s = duration_s
        self._identity = f"{_user()}@{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"
        self._timeout = min(REQUEST_TIMEOUT_S, duration_s / 3)
        self._lease: client.V1Lease | None = None  # the version we last wrote, while held
        self._mutex = threading.Lock()  # one request about the Lease at a time
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._lost: str | None = None
        self._written_at = 0.0  # time.monotonic() of our last successful write

    @property
    def holder(self) -> str:
        """The ``holderIdentity`` this lock writes: ``user@host/pid/<random>``."""
        return self._identity

    @property
    def lost(self) -> str | None:
        """Why the Lease was lost while held, or None: taken over, deleted, or not renewed
        for a whole duration (renewals failed: another canary may have taken it since)."""
        if self._lost is not None:
            return self._lost
        unrenewed_s = time.monotonic() - self._written_at
        if self._lease is not None and unrenewed_s > self.duration_s:
            return (
                f"the Lease {self._where()} has not been renewed for {unrenewed_s:.0f}s "
                f"(its duration is {self.duration_s}s): another canary may hold it now"
            )
        return None

    def acquire(self) -> None:
        """Create the Lease, or take it over if expired; raise ``LockHeld`` if it is held."""
        with self._mutex:
            if self._lease is not None:
                raise RuntimeError(f"the lock of canary scope {self.scope!r} is already held")
            self._lease = self._take()
            self._lost = None
            self._stop = threading.Event()
            self._renewer = threading.Thread(
                target=self._renew_loop,
                args=(self._stop,),
                name=f"lease-renewer-{self.scope}",
                daemon=True,
            )
            self._renewer.start()

    def release(self) -> None:
        """Stop renewing and delete the Lease if it is still ours (its resourceVersion as a
        precondition). An API error is logged: the Lease then expires by itself."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=4 * self._timeout + 1)
            self._renewer = None
        with self._mutex:
            lease, self._lease = self._lease, None
            if lease is None:
                return
            try:
                self._delete_if_ours()
            except LockUnavailable as exc:
                logger.warning(
                    "%s; it expires by itself %ss after its last renewal", exc, self.duration_s
                )

    # --- taking ---

    def _take(self) -> client.V1Lease:
        """Up to three rounds of create, read and replace: the Lease may be deleted or
        changed between two requests by another canary."""
        for _ in range(3):
            now = _now()
            try:
                return self._request(
                    "creating", "create_namespaced_lease", body=self._body(now, now, 0)
                )
            except _Status as status:
                if status.code != 409:
                    raise status.unavailable from None
            current = self._read()
            if current is None:
                continue  # released between our create and our read: create again
            spec = current.spec or client.V1LeaseSpec()
            theirs = spec.holder_identity and spec.holder_identity != self._identity
            if theirs and not _expired(spec, self.duration_s):
                raise self._held(spec)
            body = self._body(now, now, (spec.lease_transitions or 0) + 1)
            body.metadata.resource_version = current.metadata.resource_version
            try:
                return self._request("taking over", "replace_namespaced_lease", body=body)
            except _Status as status:
                if status.code == 409:  # someone else took it between our read and replace
                    winner = self._read()
                    if winner is not None and winner.spec and winner.spec.holder_identity:
                        raise self._held(winner.spec) from None
                elif status.code != 404:
                    raise status.unavailable from None
        raise LockUnavailable(
            f"the Lease {self._where()} changed under every attempt to take it (three "
            "rounds); other canaries are competing for this scope"
        )

    def _body(self, now: datetime, acquired: datetime, transitions: int) -> client.V1Lease:
        return client.V1Lease(
            api_version="coordination.k8s.io/v1",
            kind="Lease",
            metadata=client.V1ObjectMeta(
                name=self.name, namespace=self.namespace, labels=dict(_MANAGED_BY)
            ),
            spec=client.V1LeaseSpec(
                holder_identity=self._identity,
                lease_duration_seconds=self.duration_s,
                acquire_time=acquired,
                renew_time=now,
                lease_transitions=transitions,
            ),
        )

    def _held(self, spec: client.V1LeaseSpec) -> LockHeld:
        renewed = spec.renew_time or spec.acquire_time
        expires = (
            f"; renewed {_iso(renewed)}, expires "
            f"{_iso(renewed + timedelta(seconds=_duration(spec, self.duration_s)))} "
            "unless renewed"
            if renewed
            else ""
        )
        since = _iso(spec.acquire_time) if spec.acquire_time else None
        return LockHeld(
            self.scope, str(spec.holder_identity), since, f"Lease {self._where()}{expires}"
        )

    # --- holding ---

    def _renew_loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.duration_s / 3):
            with self._mutex:
                if stop.is_set() or self._lease is None:
                    return
                if not self._renew():
                    stop.set()
                    return

    def _renew(self) -> bool:
        """One renewal; False when the Lease is lost (taken over or deleted)."""
        if self._lease is None or self._lease.spec is None:
            return False
        body = self._lease.model_copy(deep=True)
        body.spec.renew_time = _now()
        try:
            self._lease = self._request("renewing", "replace_namespaced_lease", body=body)
            return True
        except _Status as status:
            if status.code not in (404, 409):
                logger.warning("%s; trying again in %gs", status.unavailable, self.duration_s / 3)
                return True
        except LockUnavailable as exc:
            logger.warning("%s; trying again in %gs", exc, self.duration_s / 3)
            return True
        try:
            current = self._read()
        except LockUnavailable as exc:
            logger.warning("%s; trying again in %gs", exc, self.duration_s / 3)
            return True
        holder = current.spec.holder_identity if current and current.spec else None
        if current is not None and holder == self._identity:
            self._lease = current  # changed by someone else (a label?) but still ours
            return True
        self._lost = (
            f"the Lease {self._where()} was deleted by someone else"
            if current is None
            else f"the Lease {self._where()} was taken over by {holder or 'nobody'}"
        )
        logger.warning("canary scope %r: %s while this canary held it", self.scope, self._lost)
        return False

    # --- releasing ---

    def _delete_if_ours(self) -> None:
        current = self._read()
        if current is None or current.spec is None:
            return
        if current.spec.holder_identity != self._identity:
            logger.info(
                "canary scope %r: not deleting the Lease %s, %s holds it now",
                self.scope,
                self._where(),
                current.spec.holder_identity,
            )
            return
        options = client.V1DeleteOptions(
            preconditions=client.V1Preconditions(resource_version=current.metadata.resource_version)
        )
        try:
            self._request("deleting", "delete_namespaced_lease", body=options)
        except _Status as status:
            if status.code not in (404, 409):  # gone, or changed (taken over) since our read
                raise status.unavailable from None

    # --- the API ---

    def _read(self) -> client.V1Lease | None:
        """The Lease as it is now, or None when there is none."""
        try:
            return self._request("reading", "read_namespaced_lease")
        except _Status as status:
            if status.code == 404:
                return None
            raise status.unavailable from None

    def _request(self, doing: str, method: str, **arguments: Any) -> Any:
        """Call ``method`` of the API about our Lease, bounded by the request timeout; an
        HTTP error status becomes :class:`_Status`, no answer :class:`LockUnavailable`."""
        host = self.api.api_client.configuration.host
        if method != "create_namespaced_lease":
            arguments["name"] = self.name
        try:
            answer = getattr(self.api, method)(
                namespace=self.namespace, _request_timeout=self._timeout, **arguments
            )
        except ApiException as exc:
            raise _Status(exc, f"{doing} the Lease {self._where()} on {host}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise LockUnavailable(
                f"{doing} the Lease {self._where()}: no answer from the Kubernetes API server "
                f"{host}: {_no_answer(exc)}"
            ) from None
        if method in ("create_namespaced_lease", "replace_namespaced_lease"):
            self._written_at = time.monotonic()
        return answer

    def _where(self) -> str:
        return f"{self.namespace}/{self.name}"


class _Status(Exception):
    """An HTTP error status from the API server, with the LockUnavailable it becomes when the
    caller has no use for it."""

    def __init__(self, exc: ApiException, what: str) -> None:
        super().__init__(what)
        self.code = int(exc.status or 0)
        words = f"{what}: the API server answered {exc.status} {exc.reason}"
        if message := _status_message(exc):
            words += f": {message}"
        if self.code == 403:
            words += (
                " (the canary's Kubernetes user needs get, create, update and delete on "
                "leases.coordination.k8s.io in this namespace)"
            )
        self.unavailable = LockUnavailable(words)


def _status_message(exc: ApiException) -> str:
    """The ``message`` of the Status the API server sent, cut short, or ''."""
    try:
        message = json.loads(exc.body or "").get("message", "")
    except (ValueError, AttributeError):
        return ""
    return str(message)[:300]


def _no_answer(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return re.sub(r"<[^>]*>: ", "", str(reason))[:300]


def _expired(spec: client.V1LeaseSpec, default_duration_s: int) -> bool:
    renewed = spec.renew_time or spec.acquire_time
    if renewed is None:
        return True
    return _aware(renewed) + timedelta(seconds=_duration(spec, default_duration_s)) <= _now()


def _duration(spec: client.V1LeaseSpec, default_s: int) -> int:
    return int(spec.lease_duration_seconds or default_s)


# --- choosing ---


def scope_lock(
    scope: str,
    lock_dir: Path,
    namespace: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> ScopeLock:
    """The lock of ``scope``: a Lease when ``KUBECONFIG`` is set in ``environ`` (in
    ``namespace``, else the kubeconfig context's namespace, else ``default``; the context is
    ``KUBERNETES_CONTEXT`` if set, as for the Kubernetes faults), a file lock in ``lock_dir``
    otherwise."""
    validate_scope(scope)
    kubeconfig = environ.get("KUBECONFIG")
    if not kubeconfig:
        return FileScopeLock(scope, lock_dir)
    context = environ.get("KUBERNETES_CONTEXT") or None
    try:
        api_client = kube_config.new_client_from_config(
            config_file=kubeconfig, context=context, persist_config=False
        )
        if namespace is None:
            contexts, active = kube_config.list_kube_config_contexts(config_file=kubeconfig)
            chosen = next((c for c in contexts if c.get("name") == context), None) or active
            namespace = ((chosen or {}).get("context") or {}).get("namespace") or "default"
    except (kube_config.ConfigException, OSError, ValueError, TypeError) as exc:
        raise LockUnavailable(
            f"cannot load the kubeconfig {kubeconfig} (KUBECONFIG) to lock canary scope "
            f"{scope!r} with a Lease: {exc}"
        ) from None
    return LeaseScopeLock(scope, namespace, client.CoordinationV1Api(api_client))


# --- small helpers ---


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no USER variable (some containers)
        return f"uid{os.getuid()}"


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return _aware(moment).astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
