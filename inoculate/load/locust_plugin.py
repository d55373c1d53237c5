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
  ``FastHttpSession`` and ``HttpSession``), keeps it *in flight* until that method returns,
  and counts every request *completed* or *failed* (from Locust's ``request`` event), per
  second and per endpoint ``"<METHOD> <name>"`` (the bookkeeping is
  :class:`inoculate.load.recording.SecondRecorder`);
- records each completed request's latency in microseconds into that second's HDR histogram,
  with coordinated-omission correction under the closed model when an expected interval is
  declared (env ``INOCULATE_EXPECTED_INTERVAL_MS``) or derived from the users' wait time;
- writes, per second, the requests in flight past each latency threshold of the run (env
  ``INOCULATE_LATENCY_THRESHOLDS_MS``), the requests that stalled, and the open model's
  dropped arrivals (the event :data:`~inoculate.load.recording.DROPPED_ARRIVAL_EVENT`);
- applies explicit client timeouts (env ``INOCULATE_REQUEST_TIMEOUT_S``, default 2 s) so that
  a blackholed service produces failures instead of requests that hang for Locust's default
  60 s;
- every second appends one ``SliSample`` JSON line for the second that just ended to
  ``$INOCULATE_SLI_DIR/sli-<pid>.jsonl`` (also when nothing happened, so a blackhole shows
  as zeros), and on quit flushes the last, partial second;
- at each quarter of a second in between, replaces ``sli-<pid>.open.json`` with the second
  still open as it stands (``OpenSecond``), so that a breach can be seen before it ends.

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
import statistics
import time
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gevent
from locust import events
from locust.clients import HttpSession
from locust.contrib.fasthttp import FastHttpSession, FastHttpUser
from locust.env import Environment
from locust.event import EventHook
from locust.runners import LocalRunner, WorkerRunner

from inoculate.load.lifetime import (
    EXPECTED_INTERVAL_ENV,
    LATENCY_THRESHOLDS_ENV,
    LOAD_MODEL_ENV,
    PARENT_PID_ENV,
    REQUEST_TIMEOUT_ENV,
    SLI_DIR_ENV,
    die_with_parent,
)
from inoculate.load.recording import (
    DROPPED_ARRIVAL_EVENT,
    OPEN_SECOND_SUFFIX,
    InFlightRequest,
    SecondRecorder,
    parse_thresholds,
)
from inoculate.steady_state.samples import OpenSecond

__all__ = ["DEFAULT_REQUEST_TIMEOUT_S", "endpoint_key"]

DEFAULT_REQUEST_TIMEOUT_S = 2.0
# Wake a few milliseconds after the second boundary so that the second is really over.
_FLUSH_DELAY_S = 0.005
_TICKS_PER_S = 4  # the open second is rewritten at .25, .5 and .75
_WRAPPED_MARK = "_inoculate_wrapped"

logger = logging.getLogger(__name__)


def endpoint_key(method: str | bytes, name: str) -> str:
    """Return the endpoint key ``"<METHOD> <name>"`` used in SLI samples and SLO specs."""
    if isinstance(method, bytes):
        method = method.decode("ascii", errors="replace")
    return f"{method.upper()} {name}"


class _Pending:
    """The requests each greenlet started and Locust has not reported yet.

    Locust reports a request (its ``request`` event) in the greenlet that made it, at the
    end of ``request`` or, with ``catch_response``, when the response's block exits: the
    completion is matched to its start there, so that a stalled request's completion is
    known to be late.
    """

    _MAX_PER_GREENLET = 64  # a greenlet whose events never came must not grow forever

    def __init__(self) -> None:
        self._by_greenlet: weakref.WeakKeyDictionary[Any, list[InFlightRequest]] = (
            weakref.WeakKeyDictionary()
        )

    def push(self, request: InFlightRequest) -> None:
        pending = self._by_greenlet.setdefault(gevent.getcurrent(), [])
        pending.append(request)
        del pending[: -self._MAX_PER_GREENLET]

    def pop(self, key: str) -> InFlightRequest | None:
        pending = self._by_greenlet.get(gevent.getcurrent())
        if not pending:
            return None
        for index, request in enumerate(pending):
            if request.key == key:
                return pending.pop(index)
        return None


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


def _expected_interval_us(environment: Environment) -> float | None:
    """The closed model's expected interval between a user's requests, in microseconds.

    Declared (``INOCULATE_EXPECTED_INTERVAL_MS``; ``0`` switches the correction off), or
    derived: the shortest mean ``wait_time`` among the user classes that run, sampled from
    each class's wait-time function (``constant`` and ``between`` derive; a wait time that
    needs a running user, like ``constant_pacing``, does not). None: no correction.
    """
    if os.environ.get(LOAD_MODEL_ENV, "closed") != "closed":
        return None  # the open model starts requests on schedule: nothing was omitted
    raw = os.environ.get(EXPECTED_INTERVAL_ENV, "")
    if raw:
        interval_ms = float(raw)
        return interval_ms * 1000 if math.isfinite(interval_ms) and interval_ms > 0 else None
    means = [m for m in map(_mean_wait_s, environment.user_classes) if m is not None and m > 0]
    if not means:
        logger.warning(
            "inoculate: no expected interval could be derived from the users' wait_time; "
            "latencies are recorded without coordinated-omission correction "
            "(declare load.expected_interval_ms)"
        )
        return None
    interval_us = min(means) * 1_000_000
    logger.info(
        "inoculate: coordinated-omission correction, expected interval %.1f ms", interval_us / 1000
    )
    return interval_us


def _mean_wait_s(user_class: type) -> float | None:
    wait_time = getattr(user_class, "wait_time", None)
    if not callable(wait_time):
        return None
    try:
        waits = [float(wait_time(None)) for _ in range(200)]
    except Exception:  # a wait time that needs a running user instance
        return None
    return statistics.fmean(waits) if all(math.isfinite(w) and w >= 0 for w in waits) else None


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
    pending: _Pending | None,
    default_timeout_s: float | None,
) -> None:
    """Count request starts of ``session_class``, keep each in flight until ``request``
    returns (and give its requests a default timeout).

    Locust fires an event only when a request *ends*; a blackholed request never ends until
    its timeout, so the start has to be seen where the request is made: in the session's
    ``request`` method, which every verb helper (get, post, rest, ...) goes through.
    """
    original = session_class.request
    if getattr(original, _WRAPPED_MARK, False):
        return

    @functools.wraps(original)
    def request(self: Any, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
        if default_timeout_s is not None:
            kwargs.setdefault("timeout", default_timeout_s)
        if recorder is None or pending is None:
            return original(self, method, url, *args, **kwargs)
        name = args[0] if args else kwargs.get("name")
        key = endpoint_key(method, start_name(self, url, name))
        in_flight = recorder.record_start(key, time.time())
        pending.push(in_flight)
        try:
            return original(self, method, url, *args, **kwargs)
        finally:
            recorder.record_answer(in_flight)

    setattr(request, _WRAPPED_MARK, True)
    session_class.request = request


def _on_request(
    recorder: SecondRecorder,
    pending: _Pending,
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
    key = endpoint_key(request_type, name)
    recorder.record_completion(
        key, ended_at, round(latency_ms * 1000), exception is not None, pending.pop(key)
    )


def _flush_every_second(recorder: SecondRecorder, open_file: Path) -> None:
    """Write each second just after it ends; in between, every quarter of a second, replace
    ``open_file`` with the open second as it stands (an early sight of a breach)."""
    while True:
        now = time.time()
        tick = (math.floor(now * _TICKS_PER_S) + 1) / _TICKS_PER_S
        gevent.sleep(tick - now + _FLUSH_DELAY_S)
        now = time.time()
        recorder.flush_before(int(now))
        if now - int(now) > 2 * _FLUSH_DELAY_S:
            sample = recorder.open_sample(now)
            if sample is not None:
                OpenSecond(now, sample).write(open_file)


def _start_recording(environment: Environment, sli_dir: Path, timeout_s: float) -> None:
    sli_dir.mkdir(parents=True, exist_ok=True)
    out = (sli_dir / f"sli-{os.getpid()}.jsonl").open("a", encoding="utf-8")
    recorder = SecondRecorder(
        out=out,
        next_second=int(time.time()),
        thresholds_ms=parse_thresholds(os.environ.get(LATENCY_THRESHOLDS_ENV, "")),
        expected_interval_us=_expected_interval_us(environment),
    )
    pending = _Pending()
    _wrap_request(FastHttpSession, _fasthttp_start_name, recorder, pending, None)
    _wrap_request(HttpSession, _http_start_name, recorder, pending, timeout_s)
    environment.events.request.add_listener(functools.partial(_on_request, recorder, pending))
    # The open model (open_model.py) reports the arrivals it drops through this event.
    dropped = EventHook()
    dropped.add_listener(lambda at, **_: recorder.record_dropped(at))
    setattr(environment.events, DROPPED_ARRIVAL_EVENT, dropped)
    # Started at init rather than test_start so that the stream has no gap while a worker
    # waits for its master, and so that every process reports from its first second.
    flusher = gevent.spawn(
        _flush_every_second, recorder, sli_dir / f"sli-{os.getpid()}{OPEN_SECOND_SUFFIX}"
    )
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
    # The open model runs the locustfile's classes without Locust spawning them.
    available = (environment.available_user_classes or {}).values()
    _apply_fasthttp_timeouts([*environment.user_classes, *available], timeout_s)
    if not isinstance(environment.runner, LocalRunner | WorkerRunner):
        return  # a --processes master runs no users: its workers record
    sli_dir = os.environ.get(SLI_DIR_ENV)
    if not sli_dir:
        logger.warning("inoculate: %s is not set, SLI samples are not recorded", SLI_DIR_ENV)
        _wrap_request(HttpSession, _http_start_name, None, None, timeout_s)
        return
    _start_recording(environment, Path(sli_dir), timeout_s)
