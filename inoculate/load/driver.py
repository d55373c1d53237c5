"""Load generation: Locust in its own process group, and the merged per-second SLI stream.

This module runs in the runner's process and must never ``import locust`` (that would
gevent-monkey-patch the runner). Locust runs as ``python -m locust`` with our plugin
(``locust_plugin.py``) attached, and under the open model with ``open_model.py`` too, whose
``OpenArrivals`` is then the only User class Locust runs; each Locust process that runs users
writes one
``SliSample`` line per second to ``<run_dir>/load/sli-<pid>.jsonl``. A collector thread here
tails those files, merges each second across processes and appends it to
``<run_dir>/sli.jsonl``, usually about 0.1 s after the second ended. Four times a second
each process also replaces ``sli-<pid>.open.json`` with the second still open; the collector
merges those into ``<run_dir>/load/open-second.json`` for the SLO monitor's early sight of a
breach, and removes them when the load ends.

Exceptions::

    LoadError                  anything that goes wrong with the load; the message says what to do
    └── LocustFailedError      Locust exited or produced no sample; carries the tail of locust.log
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO

import psutil

from inoculate.load.lifetime import (
    EXPECTED_INTERVAL_ENV,
    LATENCY_THRESHOLDS_ENV,
    LOAD_MODEL_ENV,
    OPEN_MAX_IN_FLIGHT_ENV,
    OPEN_RATE_ENV,
    OPEN_TAGS_ENV,
    OPEN_USER_CLASSES_ENV,
    PARENT_PID_ENV,
    REQUEST_TIMEOUT_ENV,
    SLI_DIR_ENV,
)
from inoculate.load.recording import OPEN_SECOND_SUFFIX, format_thresholds
from inoculate.load.spec import LoadSpec
from inoculate.model.errors import LoadError, LocustFailedError
from inoculate.model.layout import LOAD_DIR, LOCUST_LOG_FILE, OPEN_SECOND_FILE, SAMPLES_FILE
from inoculate.steady_state.samples import OpenSecond, SliSample, merge_samples

__all__ = [
    "COLLECT_GRACE_S",
    "LocustLoad",
    "SecondMerger",
    "locust_command",
    "locust_environment",
]

PLUGIN_PATH = Path(__file__).resolve().with_name("locust_plugin.py")
OPEN_MODEL_PATH = Path(__file__).resolve().with_name("open_model.py")
OPEN_MODEL_USER = "OpenArrivals"
# How long after a second has ended the collector waits for a slow writer before merging
# without it; with the writers' own ~5 ms delay this bounds a line's lateness to ~t+1.35 s.
COLLECT_GRACE_S = 0.3
_POLL_S = 0.05
_LOG_TAIL_BYTES = 4000

logger = logging.getLogger(__name__)


def locust_command(
    spec: LoadSpec, host: str, log_file: Path, master_port: int | None = None
) -> list[str]:
    """Return the Locust command line for ``spec`` (``master_port`` is needed when forking).

    Under the open model Locust runs one ``OpenArrivals`` per process, which draws the
    locustfile's tasks itself; the user classes and tags it may draw from go through the
    environment (:func:`locust_environment`), since on the command line Locust would apply
    them to ``OpenArrivals``.
    """
    locustfile = Path(spec.locustfile).resolve()
    if spec.model == "open":
        command = [sys.executable, "-m", "locust", OPEN_MODEL_USER]
        command += ["-f", f"{locustfile},{PLUGIN_PATH},{OPEN_MODEL_PATH}"]
        users, spawn_rate = spec.processes, float(spec.processes)
    else:
        command = [sys.executable, "-m", "locust", *spec.user_classes]
        command += ["-f", f"{locustfile},{PLUGIN_PATH}"]
        users, spawn_rate = spec.users, spec.spawn_rate
    command += ["--headless", "--only-summary", "--host", host]
    command += ["--users", str(users), "--spawn-rate", str(spawn_rate)]
    command += ["--run-time", f"{math.ceil(spec.max_duration_s)}s", "--logfile", str(log_file)]
    if spec.processes > 1:
        if master_port is None:
            raise LoadError("a master port is needed to run Locust with more than one process")
        # Locust's master binds every interface on port 5557 by default: keep it on loopback,
        # on a port of its own so that two runs never collide.
        command += ["--processes", str(spec.processes), "--master-bind-host", "127.0.0.1"]
        command += ["--master-bind-port", str(master_port), "--master-port", str(master_port)]
    if spec.tags and spec.model == "closed":
        command += ["--tags", *spec.tags]
    return command


def locust_environment(
    spec: LoadSpec, writers_dir: Path, latency_thresholds_ms: Iterable[float] = ()
) -> dict[str, str]:
    """The environment of the Locust process: ours, without the caller's ``LOCUST_*``.

    ``latency_thresholds_ms``: the run's latency SLO thresholds, whose in-flight levels the
    plugin writes. Under the open model each process gets its share of the rate and of the
    in-flight bound.
    """
    # LOCUST_* variables of the caller's environment would silently change the run (e.g.
    # LOCUST_PROCESSES): the command line is the whole configuration.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    env[SLI_DIR_ENV] = str(writers_dir)
    env[PARENT_PID_ENV] = str(os.getpid())
    env[REQUEST_TIMEOUT_ENV] = repr(spec.request_timeout_s)
    env[LATENCY_THRESHOLDS_ENV] = format_thresholds(latency_thresholds_ms)
    env[LOAD_MODEL_ENV] = spec.model
    if spec.model == "open":
        assert spec.rate_rps is not None  # the spec's validator requires it
        env[OPEN_RATE_ENV] = repr(spec.rate_rps / spec.processes)
        env[OPEN_MAX_IN_FLIGHT_ENV] = str(spec.in_flight_bound // spec.processes)
        env[OPEN_USER_CLASSES_ENV] = ",".join(spec.user_classes)
        env[OPEN_TAGS_ENV] = ",".join(spec.tags)
    else:
        interval = spec.expected_interval_ms
        env[EXPECTED_INTERVAL_ENV] = "" if interval is None else repr(float(interval))
    env["PYTHONUNBUFFERED"] = "1"
    return env


class SecondMerger:
    """Merges the per-process samples of each second once the second is complete.

    A second ``t`` is complete when every expected writer has reported ``t`` (writers report
    seconds in order), or when ``grace_s`` has passed since ``t`` ended. Seconds are released
    in order. Data for a second already released (a writer later than the grace) is folded
    into the next released second, so counts are never lost nor written twice.
    """

    def __init__(self, expected_writers: int, grace_s: float = COLLECT_GRACE_S) -> None:
        self.expected_writers = expected_writers
        self.grace_s = grace_s
        self._pending: dict[int, list[SliSample]] = {}
        self._last_second: dict[str, int] = {}
        self._released_through: int | None = None
        self._late: list[SliSample] = []

    def add(self, writer: str, sample: SliSample) -> None:
        """Take one sample written by ``writer``."""
        self._last_second[writer] = max(sample.t, self._last_second.get(writer, sample.t))
        if self._released_through is not None and sample.t <= self._released_through:
            logger.warning("SLI sample of second %d from %s came too late", sample.t, writer)
            self._late.append(sample)
        else:
            self._pending.setdefault(sample.t, []).append(sample)

    def _is_complete(self, t: int, now: float) -> bool:
        if now >= t + 1 + self.grace_s:
            return True
        reported = self._last_second.values()
        return len(self._last_second) >= self.expected_writers and all(s >= t for s in reported)

    def pop_ready(self, now: float) -> list[SliSample]:
        """Return the merged samples of the seconds complete at Unix time ``now``, in order."""
        ready: list[SliSample] = []
        for t in sorted(self._pending):
            if not self._is_complete(t, now):
                break
            ready.append(self._release(t))
        return ready

    def drain(self) -> list[SliSample]:
        """Return every pending second merged, complete or not (the writers have ended)."""
        ready = [self._release(t) for t in sorted(self._pending)]
        if self._late:
            logger.warning("dropped %d SLI samples that came after the end", len(self._late))
            self._late.clear()
        return ready

    def _release(self, t: int) -> SliSample:
        # A late second's counts move to this one; its levels (requests overdue at its end)
        # are stale by now and would be counted twice, so they are left out.
        late = [
            SliSample(
                t, {k: v.without_levels() for k, v in s.endpoints.items()}, s.dropped_arrivals
            )
            for s in self._late
        ]
        parts = self._pending.pop(t) + late
        self._late.clear()
        self._released_through = t
        return merge_samples(parts)[0]


class _FileTail:
    """Reads the complete lines appended to one writer's file since the last read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] = path.open("rb")
        self._partial = b""

    def read_samples(self) -> list[SliSample]:
        data = self._partial + self._file.read()
        *lines, self._partial = data.split(b"\n")
        samples = []
        for line in lines:
            try:
                samples.append(SliSample.from_line(line.decode("utf-8")))
            except (ValueError, KeyError, TypeError) as exc:
                logger.warning("skipping a malformed SLI line in %s: %s", self.path, exc)
        return samples

    def close(self) -> None:
        self._file.close()


class _Collector:
    """Tails the writers' files, merges each second and appends it to ``sli.jsonl``; merges
    the writers' open seconds into ``open_file`` while they run."""

    def __init__(
        self,
        writers_dir: Path,
        sli_file: Path,
        merger: SecondMerger,
        writers_done: Callable[[], bool],
        on_sample: Callable[[SliSample], None] | None,
        open_file: Path | None = None,
    ) -> None:
        self._writers_dir = writers_dir
        self._sli_file = sli_file
        self._open_file = open_file
        self._open_stamps: dict[Path, int] = {}
        self._merger = merger
        self._writers_done = writers_done
        self._on_sample = on_sample
        self._tails: dict[Path, _FileTail] = {}
        self.first_sample: SliSample | None = None
        self.has_first_sample = threading.Event()
        self.finished = threading.Event()
        self.samples_written = 0
        self._thread = threading.Thread(target=self._run, name="sli-collector", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            with self._sli_file.open("a", encoding="utf-8") as out:
                while True:
                    # Checked before reading so that the last read sees everything written.
                    done = self._writers_done()
                    self._read_writers()
                    ready = self._merger.drain() if done else self._merger.pop_ready(time.time())
                    for sample in ready:
                        self._emit(out, sample)
                    if done:
                        return
                    self._merge_open_seconds()
                    time.sleep(_POLL_S)
        except Exception:
            logger.exception("the SLI collector failed; no more samples will be written")
        finally:
            for tail in self._tails.values():
                tail.close()
            self._forget_open_seconds()
            self.finished.set()

    def _merge_open_seconds(self) -> None:
        """When every writer has rewritten its open second, and all hold the same second,
        write their merge to ``open_file``."""
        if self._open_file is None:
            return
        stamps = {}
        for path in self._writers_dir.glob(f"sli-*{OPEN_SECOND_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                stamps[path] = path.stat().st_mtime_ns
        if stamps == self._open_stamps:
            return
        self._open_stamps = stamps
        opens = [o for o in map(OpenSecond.read, stamps) if o is not None]
        if not opens or len(opens) < self._merger.expected_writers:
            return
        if len({o.sample.t for o in opens}) != 1:
            return  # a writer has not reached this second yet: no merge would be whole
        [sample] = merge_samples(o.sample for o in opens)
        OpenSecond(min(o.at for o in opens), sample).write(self._open_file)

    def _forget_open_seconds(self) -> None:
        # The load has ended: no second is open any more.
        if self._open_file is None:
            return
        for path in [self._open_file, *self._writers_dir.glob(f"sli-*{OPEN_SECOND_SUFFIX}")]:
            path.unlink(missing_ok=True)

    def _read_writers(self) -> None:
        for path in sorted(self._writers_dir.glob("sli-*.jsonl")):
            if path not in self._tails:
                self._tails[path] = _FileTail(path)
        for path, tail in self._tails.items():
            for sample in tail.read_samples():
                self._merger.add(path.name, sample)

    def _emit(self, out: IO[str], sample: SliSample) -> None:
        out.write(sample.to_line() + "\n")
        out.flush()
        self.samples_written += 1
        if self.first_sample is None:
            self.first_sample = sample
            self.has_first_sample.set()
        if self._on_sample is not None:
            try:
                self._on_sample(sample)
            except Exception:
                # A consumer's bug must not stop the stream that every other consumer reads.
                logger.exception("on_sample callback failed for second %d", sample.t)


class LocustLoad:
    """Runs Locust with the SLI plugin in its own process group; one instance per run."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._collector: _Collector | None = None
        self._log_file: Path | None = None

    def start(
        self,
        spec: LoadSpec,
        host: str,
        run_dir: Path,
        on_sample: Callable[[SliSample], None] | None = None,
        *,
        extra_args: Sequence[str] = (),
        latency_thresholds_ms: Iterable[float] = (),
    ) -> None:
        """Start Locust against ``host`` and stream merged samples to ``run_dir/sli.jsonl``.

        ``host`` is the resolved base URL (``spec.host`` or the system's URL). ``on_sample``
        is called from the collector thread with each merged second. ``extra_args`` are added
        to Locust's command line (e.g. ``--csv`` for a benchmark). ``latency_thresholds_ms``:
        the run's latency SLO thresholds (requests in flight past them count against them).
        """
        if self._process is not None:
            raise LoadError("this LocustLoad was already started; use a new one for another run")
        locustfile = Path(spec.locustfile)
        _check_locustfile(locustfile)
        writers_dir = run_dir / LOAD_DIR
        writers_dir.mkdir(parents=True, exist_ok=True)
        if any(writers_dir.glob("sli-*.jsonl")):
            raise LoadError(f"{writers_dir} holds samples of an earlier load; use a new run_dir")
        self._log_file = run_dir / LOCUST_LOG_FILE
        master_port = _free_loopback_port() if spec.processes > 1 else None
        command = [*locust_command(spec, host, self._log_file, master_port), *extra_args]
        env = locust_environment(spec, writers_dir, latency_thresholds_ms)
        self._process = _spawn(command, env, run_dir, self._log_file)
        logger.info("started Locust (pid %d): %s", self._process.pid, " ".join(command))
        self._collector = _Collector(
            writers_dir,
            run_dir / SAMPLES_FILE,
            SecondMerger(expected_writers=spec.processes),
            self._has_exited,
            on_sample,
            open_file=run_dir / OPEN_SECOND_FILE,
        )
        self._collector.start()
        # Safety net for a runner that dies of an exception without calling stop(): Locust
        # runs in its own session, so nothing else would stop it before --run-time.
        atexit.register(self._stop_at_exit)

    @property
    def is_running(self) -> bool:
        """True while the Locust process is alive."""
        return self._process is not None and not self._has_exited()

    @property
    def pid(self) -> int | None:
        """The Locust (leader) process id, once started."""
        return self._process.pid if self._process is not None else None

    @property
    def samples_written(self) -> int:
        """How many merged seconds have been appended to ``sli.jsonl``."""
        return self._collector.samples_written if self._collector is not None else 0

    def wait_first_sample(self, timeout_s: float = 30.0) -> SliSample:
        """Wait for the first merged sample; raise ``LocustFailedError`` if none comes."""
        if self._collector is None:
            raise LoadError("the load was not started")
        collector = self._collector
        deadline = time.monotonic() + timeout_s
        while not collector.has_first_sample.wait(_POLL_S):
            if collector.finished.is_set():
                raise LocustFailedError(
                    f"Locust exited (code {self._exit_code()}) before producing an SLI sample"
                    f"{self._log_tail()}"
                )
            if time.monotonic() >= deadline:
                raise LocustFailedError(
                    f"Locust produced no SLI sample within {timeout_s:g} s{self._log_tail()}"
                )
        assert collector.first_sample is not None  # set before the event
        return collector.first_sample

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop Locust: SIGTERM to its process group, SIGKILL after ``timeout_s``; flush samples.

        Afterwards no process of the group is left and every sample is in ``sli.jsonl``.
        """
        process = self._process
        if process is None or process.returncode is not None:  # not started, or stopped
            return
        atexit.unregister(self._stop_at_exit)
        survivors = _process_tree(process.pid)
        _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while not self._has_exited() and time.monotonic() < deadline:
            time.sleep(_POLL_S)
        # The leader is exited but not reaped yet, so its group id cannot have been reused:
        # sweep whatever of the group survived (a forked worker, or everything on timeout).
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()
        try:
            _wait_gone(survivors, timeout_s=5.0)
        finally:
            if self._collector is not None:
                self._collector.join(timeout_s=5.0)

    def _stop_at_exit(self) -> None:
        self.stop(timeout_s=2.0)

    def _has_exited(self) -> bool:
        process = self._process
        if process is None or process.returncode is not None:
            return True
        try:
            return _peek_exit(process.pid) is not None
        except ChildProcessError:  # reaped by stop() in another thread
            return True

    def _exit_code(self) -> int | None:
        process = self._process
        if process is None or process.returncode is not None:
            return None if process is None else process.returncode
        try:
            state = _peek_exit(process.pid)
        except ChildProcessError:
            return process.returncode
        if state is None:
            return None
        return state.si_status if state.si_code == os.CLD_EXITED else -state.si_status

    def _log_tail(self) -> str:
        if self._log_file is None or not self._log_file.exists():
            return ""
        with self._log_file.open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - _LOG_TAIL_BYTES))
            tail = log.read().decode("utf-8", errors="replace")
        return f"; the end of {self._log_file}:\n{tail}"


def _check_locustfile(locustfile: Path) -> None:
    # Catch a missing file or a syntax error here, with the file and line, rather than as
    # a Locust that dies a second later.
    if not locustfile.is_file():
        raise LoadError(f"locustfile {locustfile} not found (relative paths are not resolved here)")
    try:
        compile(locustfile.read_bytes(), str(locustfile), "exec")
    except SyntaxError as exc:
        raise LoadError(
            f"locustfile {locustfile} has a syntax error at line {exc.lineno}: {exc.msg}"
        ) from exc


def _spawn(
    command: list[str], env: dict[str, str], cwd: Path, log_file: Path
) -> subprocess.Popen[bytes]:
    try:
        with log_file.open("ab") as log:
            # A session of its own, so that the whole tree (forked workers too) is signalled
            # as one group and no terminal signal of ours reaches it.
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
    except OSError as exc:
        raise LoadError(f"could not start Locust ({command[0]} -m locust): {exc}") from exc


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _peek_exit(pid: int) -> os.waitid_result | None:
    # WNOWAIT leaves the exited child unreaped: only stop() reaps, so that the process
    # group id cannot be reused by another process before stop() has signalled it.
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _process_tree(pid: int) -> list[psutil.Process]:
    try:
        leader = psutil.Process(pid)
        return [leader, *leader.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _wait_gone(processes: list[psutil.Process], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    alive = processes
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _is_alive(p)]
        if alive:
            time.sleep(_POLL_S)
    if alive:
        raise LoadError(f"Locust processes {[p.pid for p in alive]} survived SIGKILL")


def _is_alive(process: psutil.Process) -> bool:
    # A zombie holds no resources; it is left for its (possibly init) parent to reap.
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
