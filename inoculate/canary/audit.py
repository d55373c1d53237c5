"""The canary's audit log: append-only JSON lines, each carrying the hash of the one before.

Every line records who (user, host, pid, the CI job or Kubernetes pod), when, the event
(``refused``, ``started``, ``guard``, ``skipped``, ``finished``, ``dry-run`` ...) and what the
caller adds (the policy's hash, the targets, a guard's decision, the outcome). Two keys make
the chain: ``seq``, the line's 1-based number, and ``prev``, the SHA-256 (hex) of the previous
line's exact bytes without its newline (64 zeros on line 1). An edit, a removed, inserted or
reordered line breaks the chain, and :func:`verify_chain` says where.

What a chain cannot show: lines cut off its end (the shorter file is a valid chain), an edit
of the last line, or a file replaced as a whole. :attr:`ChainCheck.head`, the last line's
hash, is what to keep elsewhere (a CI log, a log server) to catch those.

Writers take an exclusive ``flock`` on the log itself around reading the last line, writing
and fsyncing, so concurrent runs chain one after the other. A write that fails half-way
(a full disk) is cut back off before the lock is released. A last line without its newline
(power lost mid-write, or a cut file) is never chained over: :meth:`AuditLog.append` refuses
with :class:`AuditLogError` naming the file and the line, and :func:`verify_chain` reports
it. Keep the file as evidence and start a new log; the chain offers no repair on purpose.

No secret reaches the file: :meth:`AuditLog.append` scrubs the values it is given
(``secrets=``) with :mod:`inoculate.model.secrets`, in keys and values alike.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import pwd
import socket
import time
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inoculate.model.errors import InoculateError
from inoculate.model.secrets import scrub, scrub_text, secret_values

__all__ = [
    "GENESIS",
    "AuditLog",
    "AuditLogError",
    "ChainCheck",
    "line_hash",
    "policy_hash",
    "verify_chain",
    "who",
]

# The `prev` of line 1.
GENESIS = "0" * 64
# A line longer than this is not one of ours: append refuses to write one, verify reports one.
MAX_LINE_BYTES = 1 << 20
# Keys the log sets itself; a caller's field of the same name is refused.
_RESERVED = frozenset({"time", "unix", "who", "event", "seq", "prev"})
# An identity value from the environment is kept to this many characters.
_MAX_ID_CHARS = 200
_FILE_MODE = 0o640
_CHUNK = 64 * 1024


class AuditLogError(InoculateError):
    """The audit log cannot be read or written, or its end is damaged; the message names the
    file (and the line) and says what to do. Nothing was appended."""


@dataclass(frozen=True)
class ChainCheck:
    """What :func:`verify_chain` found: ``ok`` and the number of ``lines``, or the first
    ``problem`` and the ``line`` (1-based) where the chain breaks. ``first_time`` and
    ``last_time`` are the first and last lines' ``time``; ``head`` is the SHA-256 of the last
    line (when the chain is intact): the ``prev`` the next line will carry."""

    ok: bool
    lines: int
    problem: str | None = None
    line: int | None = None
    first_time: str | None = None
    last_time: str | None = None
    head: str | None = None


class AuditLog:
    """The hash-chained audit log at ``path`` (created, with its folders, on first append)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, event: str, *, secrets: Iterable[str] = (), **fields: Any) -> dict[str, Any]:
        """Durably append one line for ``event`` with ``fields``; return the record written.

        Every value in ``secrets`` (at least 4 characters, as elsewhere) becomes ``***`` in
        the fields. Values JSON cannot hold are written as their ``str``. Raises
        :class:`AuditLogError` when the file cannot be written or its last line is damaged,
        ``ValueError`` for an empty event or a field named like one the log sets itself.
        """
        if not isinstance(event, str) or not event:
            raise ValueError("an audit event must be a non-empty string")
        clashes = sorted(_RESERVED.intersection(fields))
        if clashes:
            raise ValueError(f"audit fields {clashes} are set by the audit log itself")
        hidden = secret_values([secrets] if isinstance(secrets, str) else list(secrets))
        body = _scrubbed(json.loads(json.dumps(fields, default=str)), hidden)
        identity = _scrubbed(who(), hidden)
        event = scrub_text(event, hidden)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, _FILE_MODE)
        except OSError as exc:
            raise AuditLogError(f"{self.path}: cannot open the audit log: {_reason(exc)}") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                seq, prev = self._next_link(fd)
            except OSError as exc:
                raise AuditLogError(
                    f"{self.path}: cannot read the audit log: {_reason(exc)}"
                ) from exc
            now = time.time()
            record = {
                **body,
                "event": event,
                "time": _iso(now),
                "unix": round(now, 6),
                "who": identity,
                "seq": seq,
                "prev": prev,
            }
            line = _encode(record)
            if len(line) > MAX_LINE_BYTES:
                raise AuditLogError(
                    f"{self.path}: an audit line of {len(line):,} bytes was not written; "
                    f"expected at most {MAX_LINE_BYTES:,} bytes (fewer or shorter fields)"
                )
            self._write(fd, line + b"\n")
            written: dict[str, Any] = json.loads(line)  # exactly what the file holds
            return written
        finally:
            os.close(fd)  # also releases the lock

    def _next_link(self, fd: int) -> tuple[int, str]:
        """The ``seq`` and ``prev`` of the line about to be written (under the lock)."""
        size = os.fstat(fd).st_size
        if size == 0:
            return 1, GENESIS
        if os.pread(fd, 1, size - 1) != b"\n":
            raise AuditLogError(
                f"{self.path}: line {_count_lines(fd, size)} is incomplete (no newline at its "
                "end: a writer died mid-line, or the file was cut); nothing was appended. "
                "Keep this file as evidence and start a new audit log "
                "(`inoculate audit verify` checks the lines before it)"
            )
        last = _last_line(fd, size)
        if last is None:
            raise AuditLogError(
                f"{self.path}: line {_count_lines(fd, size)} is longer than "
                f"{MAX_LINE_BYTES:,} bytes: not an audit line; nothing was appended"
            )
        record, problem = _parse(last)
        seq = None if record is None else record.get("seq")
        if record is None or not _is_int(seq):
            why = problem or "it has no integer `seq`"
            raise AuditLogError(
                f"{self.path}: line {_count_lines(fd, size)} (the last) is not an audit line "
                f"({why}); nothing was appended. Run `inoculate audit verify {self.path}`"
            )
        return int(seq) + 1, line_hash(last)

    def _write(self, fd: int, data: bytes) -> None:
        """Write all of ``data`` and fsync; on failure cut the file back to where it was."""
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, start)  # never leave half a line for the next writer
                os.fsync(fd)
            except OSError:
                pass
            raise AuditLogError(f"{self.path}: cannot write the audit log: {_reason(exc)}") from exc


def who(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Who is running: user, uid, host, pid, and the CI job, Kubernetes pod or systemd unit
    invocation when there is one — ids and names only, read from ``environ`` (default
    ``os.environ``).

    GitHub Actions: ``GITHUB_RUN_ID``, ``GITHUB_RUN_ATTEMPT``, ``GITHUB_JOB``,
    ``GITHUB_WORKFLOW``, ``GITHUB_REPOSITORY``, ``GITHUB_ACTOR``. GitLab: ``CI_JOB_ID``,
    ``CI_PIPELINE_ID``, ``CI_PROJECT_PATH``, ``GITLAB_USER_LOGIN``. Jenkins: ``BUILD_TAG``.
    Kubernetes (``KUBERNETES_SERVICE_HOST`` set): the pod from ``POD_NAME`` or ``HOSTNAME``,
    the namespace from ``POD_NAMESPACE``, and the Job (a CronJob's run) from
    ``INOCULATE_JOB_NAME`` — none of the last three is set by Kubernetes itself; give them
    with the downward API (``fieldRef: {fieldPath: "metadata.labels['job-name']"}``).
    systemd: ``INVOCATION_ID``.
    """
    env = os.environ if environ is None else environ
    uid = os.geteuid()
    found = {"user": _user(uid), "uid": str(uid), "host": socket.gethostname(),
             "pid": str(os.getpid())}  # fmt: skip

    def take(key: str, variable: str) -> None:
        value = env.get(variable, "").strip()
        if value:
            found[key] = value[:_MAX_ID_CHARS]

    if env.get("GITHUB_ACTIONS") == "true":
        found["ci"] = "github-actions"
        for key in ("run_id", "run_attempt", "job", "workflow", "repository", "actor"):
            take(f"github_{key}", f"GITHUB_{key.upper()}")
    if env.get("CI_JOB_ID"):
        found["ci"] = "gitlab"
        take("gitlab_job_id", "CI_JOB_ID")
        take("gitlab_pipeline_id", "CI_PIPELINE_ID")
        take("gitlab_project", "CI_PROJECT_PATH")
        take("gitlab_user", "GITLAB_USER_LOGIN")
    if env.get("BUILD_TAG") and (env.get("JENKINS_URL") or env.get("JENKINS_HOME")):
        found["ci"] = "jenkins"
        take("jenkins_build_tag", "BUILD_TAG")
    if env.get("KUBERNETES_SERVICE_HOST"):
        take("k8s_pod", "POD_NAME" if env.get("POD_NAME") else "HOSTNAME")
        take("k8s_namespace", "POD_NAMESPACE")
        take("k8s_job", "INOCULATE_JOB_NAME")
    take("systemd_invocation_id", "INVOCATION_ID")
    return found


def _user(uid: int) -> str:
    """The effective user's name from the password database, else ``getpass``'s answer (a
    container's arbitrary uid has no entry), else ``uid <n>``."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        pass
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return f"uid {uid}"


def policy_hash(path: Path) -> str:
    """``sha256:<hex>`` of the policy file's bytes: the audit log's name for one policy."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def line_hash(line: bytes) -> str:
    """The SHA-256 (hex) of one line's bytes without its newline: the next line's ``prev``."""
    return hashlib.sha256(line).hexdigest()


def verify_chain(path: Path) -> ChainCheck:
    """Check that every line of the audit log at ``path`` is a JSON object whose ``seq`` is its
    line number and whose ``prev`` is the previous line's hash; report the first break.

    An empty file is an intact chain of 0 lines. Raises :class:`AuditLogError` when the file
    is missing or cannot be read. Lines appended while it reads are not looked at.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            # A writer holds the lock while it writes: below this size every line is whole.
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
            size = os.fstat(handle.fileno()).st_size
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return _check_lines(handle, size)
    except OSError as exc:
        raise AuditLogError(f"{path}: cannot read the audit log: {_reason(exc)}") from exc


def _check_lines(handle: Any, size: int) -> ChainCheck:
    prev, number, offset = GENESIS, 0, 0
    first_time: str | None = None
    last_time: str | None = None
    while offset < size:
        raw = handle.readline(min(MAX_LINE_BYTES + 1, size - offset))
        if not raw:
            break  # the file shrank while we read: check what we have
        offset += len(raw)
        number += 1
        complete = raw.endswith(b"\n")
        line = raw[:-1] if complete else raw
        problem = _line_problem(line, complete, number, prev, offset >= size)
        if problem is not None:
            return ChainCheck(False, number + _count_rest(handle, size - offset), problem,
                              number, first_time, last_time)  # fmt: skip
        record = json.loads(line)
        stamp = record.get("time") if isinstance(record.get("time"), str) else None
        first_time = first_time if number > 1 else stamp
        last_time = stamp
        prev = line_hash(line)
    return ChainCheck(True, number, None, None, first_time, last_time, prev if number else None)


def _line_problem(line: bytes, complete: bool, number: int, prev: str, last: bool) -> str | None:
    """What is wrong with line ``number`` of the chain (None: it holds)."""
    if not complete:
        if len(line) > MAX_LINE_BYTES:
            return f"line {number}: longer than {MAX_LINE_BYTES:,} bytes: not an audit line"
        if last:
            return (
                f"line {number}: incomplete last line (no newline at its end): a writer died "
                "mid-line, or the file was cut"
            )
    record, problem = _parse(line)
    if record is None:
        return f"line {number}: {problem}: not an audit line (an edit, or another file)"
    seq = record.get("seq")
    if not _is_int(seq):
        return f"line {number}: no integer `seq`; expected {number}"
    if seq > number:
        return (
            f"line {number}: seq is {seq}, expected {number}: {seq - number} line(s) before "
            "it were removed, or lines were reordered (or its seq was edited)"
        )
    if seq < number:
        return (
            f"line {number}: seq is {seq}, expected {number}: a line was inserted before it, "
            "or lines were reordered (or its seq was edited)"
        )
    if record.get("prev") == prev:
        return None
    if number == 1:
        return f"line 1: prev is not {GENESIS[:8]}... (64 zeros): line 1 was edited"
    return (
        f"line {number}: prev does not match line {number - 1}'s hash: line {number - 1} was "
        "edited, or a line was removed or inserted after it"
    )


def _parse(line: bytes) -> tuple[dict[str, Any] | None, str | None]:
    if not line.strip():
        return None, "empty line"
    try:
        record = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "not UTF-8"
    except (json.JSONDecodeError, RecursionError) as exc:
        return None, f"not JSON ({getattr(exc, 'msg', 'nested too deep')})"
    if not isinstance(record, dict):
        return None, f"not a JSON object ({type(record).__name__})"
    return record, None


def _count_rest(handle: Any, remaining: int) -> int:
    """The lines in the next ``remaining`` bytes (a line without its newline counts)."""
    count, tail = 0, b"\n"
    while remaining > 0:
        chunk = handle.read(min(_CHUNK, remaining))
        if not chunk:
            break
        remaining -= len(chunk)
        count += chunk.count(b"\n")
        tail = chunk[-1:]
    return count + (tail != b"\n")


def _last_line(fd: int, size: int) -> bytes | None:
    """The last line of a file that ends in a newline, without it (None: too long)."""
    end = size - 1  # the final newline
    buffer = b""
    position = end
    while position > 0:
        start = max(0, position - _CHUNK)
        buffer = os.pread(fd, position - start, start) + buffer
        position = start
        cut = buffer.rfind(b"\n")
        if cut != -1:
            return buffer[cut + 1 :]
        if len(buffer) > MAX_LINE_BYTES:
            return None
    return buffer


def _count_lines(fd: int, size: int) -> int:
    """The number of the file's last line (one that lacks its newline counts)."""
    count, offset = 0, 0
    while offset < size:
        chunk = os.pread(fd, min(_CHUNK, size - offset), offset)
        if not chunk:
            break
        count += chunk.count(b"\n")
        offset += len(chunk)
    ends_whole = size > 0 and os.pread(fd, 1, size - 1) == b"\n"
    return count if ends_whole else count + 1


def _scrubbed(document: Any, secrets: AbstractSet[str]) -> Any:
    """``document`` with every secret gone from its values (``scrub``) and its keys."""
    if not secrets:
        return document
    if isinstance(document, Mapping):
        return {scrub_text(str(key), secrets): _scrubbed(value, secrets)
                for key, value in scrub(dict(document), secrets).items()}  # fmt: skip
    if isinstance(document, list):
        return [_scrubbed(value, secrets) for value in document]
    return scrub(document, secrets)


def _encode(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _iso(unix: float) -> str:
    return (
        datetime.fromtimestamp(unix, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
