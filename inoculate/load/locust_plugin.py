"""Locust plugin that streams one SLI sample per second: LOADED ONLY INSIDE THE LOCUST SUBPROCESS.

!!! NEVER IMPORT THIS MODULE FROM THE RUNNER, A PROBE OR A TEST PROCESS !!!
It imports ``locust``, and ``import locust`` gevent-monkey-patches the whole process
(threads, sockets, signals, time.sleep). ``inoculate.load.driver.LocustLoad`` starts Locust as
``python -m locust -f <locustfile>,<this file>`` and reads what this plugin writes; that is
the only supported way in. As a guard, importing this module fails unless ``locust`` has
already been imported by the process (i.e. unless we are inside Locust).

What it does in each Locust process that runs users (``LocalRunner`` or ``WorkerRunner``;
not the ``--processes`` master, which runs none):

- counts every request *started* (by wrapping the ``request`` method of Locust's
  ``FastHttpSession`` and ``HttpSession``) and every request *completed* or *failed* (from
  Locust's ``request`` event), per second and per endpoint ``"<METHOD> <name>"``;
- records each completed request's latency in microseconds into that second's HDR histogram;
- applies explicit client timeouts (env ``INOCULATE_REQUEST_TIMEOUT_S``, default 2 s) so that
  a blackholed service produces failures instead of requests that hang for Locust's default
  60 s;
- every second appends one ``SliSample`` JSON line for the second that just ended to
  ``$INOCULATE_SLI_DIR/sli-<pid>.jsonl`` (also when nothing happened, so a blackhole shows
  as zeros), and on quit flushes the last, partial second.

Registering an ``init`` listener when imported is how every Locust plugin hooks in; it is
this module's only import-time effect. Everything else happens in that listener.
"""

from __future__ import annotations

import sys

if "locust" not in sys.modules:
    # Refuse to be the module that first imports locust: that would monkey-patch the
    # importing process (e.g. the runner, whose signal handling then breaks).
    raise ImportError(
        "inoculate.load.locust_plugin is loaded only inside the Locust subprocess "
        "(locust -f <locustfile>,extensions/locust_plugin.py); "
        "import inoculate.load.driver and use LocustLoad instead"
    )

import functools
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import gevent
from hdrh.histogram import HdrHistogram
from locust import events
from locust.clients import HttpSession
from locust.contrib.fasthttp import FastHttpSession, FastHttpUser
from locust.env import Environment
from locust.runners import LocalRunner, WorkerRunner

from inoculate.load.lifetime import (
    PARENT_PID_ENV,
    REQUEST_TIMEOUT_ENV,
    SLI_DIR_ENV,
    die_with_parent,
)
from inoculate.steady_state.samples import (
    HIST_HIGHEST_US,
    HIST_LOWEST_US,
    EndpointSecond,
    SliSample,
    encode_histogram,
    new_histogram,
)

__all__ = ["DEFAULT_REQUEST_TIMEOUT_S", "SecondRecorder", "endpoint_key"]

DEFAULT_REQUEST_TIMEOUT_S = 2.0
# Wake a few milliseconds after the second boundary so that the second is really over.
_FLUSH_DELAY_S = 0.005
_WRAPPED_MARK = "_inoculate_wrapped"

logger = logging.getLogger(__name__)


def endpoint_key(method: str | bytes, name: str) -> str:
    """Return the endpoint key ``"<METHOD> <name>"`` used in SLI samples and SLO specs."""
    if isinstance(method, bytes):
        method = method.decode("ascii", errors="replace")
    return f"{method.upper()} {name}"


@dataclass
class _EndpointCounts:
    started: int = 0
    completed: int = 0
    failures: int = 0
    # Created on the first completion only: most (endpoint, second) slots of a blackhole
    # have none, and an empty histogram costs ~80 µs to allocate.
    histogram: HdrHistogram | None = None

    def to_endpoint_second(self) -> EndpointSecond:
        hist = encode_histogram(self.histogram) if self.histogram is not None else ""
        return EndpointSecond(self.started, self.completed, self.failures, hist)


@dataclass
class SecondRecorder:
    """Per-second, per-endpoint counts and latency histograms, written as JSON lines.

    Seconds are Unix seconds. A second is written once, after it has ended; an event that
    arrives for an already written second (it ended a hair before the boundary but was
    reported after the flush) is counted in the oldest second still open, so no request is
    ever lost or written twice.
    """

    out: TextIO
    next_second: int
    _seconds: dict[int, dict[str, _EndpointCounts]] = field(default_factory=dict)
    # Every endpoint seen so far, so that a silent second still lists it with zeros.
    _known_endpoints: dict[str, None] = field(default_factory=dict)
    _closed: bool = False

    def _counts(self, at: float, key: str) -> _EndpointCounts:
        second = max(int(at), self.next_second)
        by_endpoint = self._seconds.setdefault(second, {})
        counts = by_endpoint.get(key)
        if counts is None:
            counts = by_endpoint[key] = _EndpointCounts()
            self._known_endpoints.setdefault(key, None)
        return counts

    def record_start(self, key: str, at: float) -> None:
        """Count one request of ``key`` started at Unix time ``at``."""
        if not self._closed:
            self._counts(at, key).started += 1

    def record_completion(self, key: str, ended_at: float, latency_us: int, failed: bool) -> None:
        """Count one request of ``key`` that ended at ``ended_at``, with its latency."""
        if self._closed:
            return
        counts = self._counts(ended_at, key)
        counts.completed += 1
        if failed:
            counts.failures += 1
        if counts.histogram is None:
            counts.histogram = new_histogram()
        counts.histogram.record_value(min(max(latency_us, HIST_LOWEST_US), HIST_HIGHEST_US))

    def flush_before(self, second: int) -> None:
        """Write one line for every unwritten second before ``second``, then flush the file."""
        if self._closed or second <= self.next_second:
            return
        for t in range(self.next_second, second):
            slots = self._seconds.pop(t, {})
            endpoints = {
                key: (slots[key].to_endpoint_second() if key in slots else EndpointSecond())
                for key in self._known_endpoints
            }
            self.out.write(SliSample(t=t, endpoints=endpoints).to_line() + "\n")
        self.next_second = second
        self.out.flush()

    def close(self, now: float) -> None:
        """Write everything up to and including the current, partial second; close the file."""
        self.flush_before(int(now) + 1)
        self._closed = True
        self.out.close()


def _request_timeout_from_env() -> float:
    raw = os.environ.get(REQUEST_TIMEOUT_ENV, "")
    if not raw:
        return DEFAULT_REQUEST_TIMEOUT_S
    try:
        timeout_s = float(raw)
    except ValueError as exc:
        raise ValueError(f"{REQUEST_TIMEOUT_ENV}={raw!r} is not a number of seconds") from exc
    if not math.isfinite(timeout_s) or timeout_s <= 0:
        raise ValueError(f"{REQUEST_TIMEOUT_ENV}={raw!r} must be a positive number of seconds")
    return timeout_s


def _apply_fasthttp_timeouts(user_classes: Iterable[type], timeout_s: float) -> None:
    # FastHttpUser reads these class attributes when each user is created; Locust's default
    # of 60 s would hide a blackhole for a minute. A stricter timeout the locustfile set is kept.
    for user_class in user_classes:
        if issubclass(user_class, FastHttpUser):
            user_class.network_timeout = min(user_class.network_timeout, timeout_s)
            user_class.connection_timeout = min(user_class.connection_timeout, timeout_s)


def _fasthttp_start_name(session: Any, url: str, name: str | None) -> str:
    # Mirrors FastHttpSession.request: explicit name, then rename_request's name, then the url.
    return name or session.request_name or url


def _http_start_name(session: Any, url: str | bytes, name: str | None) -> str:
    # Mirrors HttpSession.request: explicit name, then rename_request's name, then the path
    # and query of the URL as requests sends it (PreparedRequest.path_url).
    if name or session.request_name:
        return name or session.request_name
    if isinstance(url, bytes):
        url = url.decode("utf-8", errors="replace")
    parts = urlsplit(session._build_url(url))
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _wrap_request(
    session_class: type,
    start_name: Callable[[Any, Any, str | None], str],
    recorder: SecondRecorder | None,
    default_timeout_s: float | None,
) -> None:
    """Count request starts of ``session_class`` (and give its requests a default timeout).

    Locust fires an event only when a request *ends*; a blackholed request never ends until
    its timeout, so the start has to be seen where the request is made: in the session's
    ``request`` method, which every verb helper (get, post, rest, ...) goes through.
    """
    original = session_class.request
    if getattr(original, _WRAPPED_MARK, False):
        return

    @functools.wraps(original)
    def request(self: Any, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
        if recorder is not None:
            name = args[0] if args else kwargs.get("name")
            recorder.record_start(endpoint_key(method, start_name(self, url, name)), time.time())
        if default_timeout_s is not None:
            kwargs.setdefault("timeout", default_timeout_s)
        return original(self, method, url, *args, **kwargs)

    setattr(request, _WRAPPED_MARK, True)
    session_class.request = request


def _on_request(
    recorder: SecondRecorder,
    request_type: str | bytes,
    name: str,
    response_time: float | None,
    exception: BaseException | None = None,
    start_time: float | None = None,
    **_: Any,
) -> None:
    latency_ms = response_time or 0.0
    # The request ended at start + duration; the event may fire later (catch_response blocks).
    ended_at = start_time + latency_ms / 1000 if start_time is not None else time.time()
    recorder.record_completion(
        endpoint_key(request_type, name), ended_at, round(latency_ms * 1000), exception is not None
    )


def _flush_every_second(recorder: SecondRecorder) -> None:
    while True:
        now = time.time()
        gevent.sleep(math.floor(now) + 1 - now + _FLUSH_DELAY_S)
        recorder.flush_before(int(time.time()))


def _start_recording(environment: Environment, sli_dir: Path, timeout_s: float) -> None:
    sli_dir.mkdir(parents=True, exist_ok=True)
    out = (sli_dir / f"sli-{os.getpid()}.jsonl").open("a", encoding="utf-8")
    recorder = SecondRecorder(out=out, next_second=int(time.time()))
    _wrap_request(FastHttpSession, _fasthttp_start_name, recorder, None)
    _wrap_request(HttpSession, _http_start_name, recorder, timeout_s)
    environment.events.request.add_listener(functools.partial(_on_request, recorder))
    # Started at init rather than test_start so that the stream has no gap while a worker
    # waits for its master, and so that every process reports from its first second.
    flusher = gevent.spawn(_flush_every_second, recorder)
    flusher.link_exception(lambda g: logger.error("SLI flusher died: %r", g.exception))

    def on_quit(**_: Any) -> None:
        flusher.kill(block=False)
        recorder.close(time.time())

    # ``quit`` fires after the runner has stopped the users: nothing is recorded afterwards.
    environment.events.quit.add_listener(on_quit)
    logger.info("inoculate: streaming SLI samples to %s", out.name)


def _die_with_parent(environment: Environment) -> None:
    # A SIGKILLed runner must not leave its load running until --run-time: the master (or
    # the single local process) dies with the runner, and --processes workers with the master.
    runner_pid = os.environ.get(PARENT_PID_ENV)
    if not runner_pid:
        return
    parent = os.getppid() if isinstance(environment.runner, WorkerRunner) else int(runner_pid)
    die_with_parent(parent)


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    _die_with_parent(environment)
    timeout_s = _request_timeout_from_env()
    _apply_fasthttp_timeouts(environment.user_classes, timeout_s)
    if not isinstance(environment.runner, LocalRunner | WorkerRunner):
        return  # a --processes master runs no users: its workers record
    sli_dir = os.environ.get(SLI_DIR_ENV)
    if not sli_dir:
        logger.warning("inoculate: %s is not set, SLI samples are not recorded", SLI_DIR_ENV)
        _wrap_request(HttpSession, _http_start_name, None, timeout_s)
        return
    _start_recording(environment, Path(sli_dir), timeout_s)
