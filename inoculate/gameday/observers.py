"""The observers' page: a read-only live view of a running gameday, over HTTP.

:class:`ObserversServer` serves one self-contained page (``observers.html``: inline CSS and
JavaScript, no CDN, no asset of any kind fetched from elsewhere) and feeds it the gameday's live
snapshot (:mod:`inoculate.gameday.live`) once a second as server-sent events:

- ``GET /``          the page;
- ``GET /events``    ``text/event-stream``: one ``data: <snapshot JSON>`` message at once, then one
  a second; a ``: heartbeat`` comment when there is no new snapshot; ``event: closed`` when the
  server stops, after which the stream ends;
- ``GET /snapshot``  the snapshot once, as JSON;
- ``POST /notes``    ``{"text": ..., "by": ...}`` as ``application/json``: an observer's note,
  handed to ``add_note(text, by)``; 204, or 400/411/413/415 with ``{"error": ...}``.

Nothing else: no endpoint aborts, holds, skips or continues (only the coordinator's console
does). The snapshot is computed once a second for all open streams together, and only while one
is open; ``snapshot()`` is never called from two threads at once.

Exposure: the server binds 127.0.0.1 by default. **A non-loopback bind** (``0.0.0.0``, a LAN
address) **exposes the page** — the gameday's title, roles, SLOs, fault targets and timeline —
and its note form to anyone who can reach that address, with no authentication: use one only on
a network you trust. On a loopback bind, a request whose ``Host`` names another host is refused
(a DNS-rebinding page cannot read the snapshot or post notes). Notes must be sent as
``application/json``, which a page of another origin cannot do without a CORS preflight that this
server never grants. The page's Content-Security-Policy lets it load nothing but itself.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import json
import logging
import math
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "MAX_NAME_CHARS",
    "MAX_NOTE_CHARS",
    "ObserversServer",
]

log = logging.getLogger(__name__)

MAX_NOTE_CHARS = 2000
MAX_NAME_CHARS = 80
MAX_BODY_BYTES = 16 * 1024  # a note of 2000 characters, each escaped as \uXXXX, fits
MAX_STREAMS = 64  # open event streams at once; more get 503
TICK_S = 1.0  # one snapshot a second
STOP_GRACE_S = 0.3  # how long stop() lets open streams say goodbye before cutting them
SOCKET_TIMEOUT_S = 10.0  # a client that neither sends its request nor reads its stream

PAGE_FILE = "observers.html"


class _Note(BaseModel):
    """The body of ``POST /notes``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    text: str = Field(min_length=1, max_length=MAX_NOTE_CHARS)
    by: str = Field(min_length=1, max_length=MAX_NAME_CHARS)

    @field_validator("by")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("expected a name on one line, without control characters")
        return value


def _json_bytes(value: Any) -> bytes:
    """Compact JSON of the snapshot; a NaN or infinite number becomes null (JSON has none)."""
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False, default=str)
    except ValueError:
        text = json.dumps(_finite(value), separators=(",", ":"), allow_nan=False, default=str)
    return text.encode("utf-8")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _csp(page: str) -> str:
    """A Content-Security-Policy that allows the page's own inline script and style, by hash,
    its event stream and note posts to this server, and nothing else."""
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for tag in hashes:
        for body in re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.DOTALL):
            digest = hashlib.sha256(body.encode("utf-8")).digest()
            hashes[tag].append(f"'sha256-{base64.b64encode(digest).decode('ascii')}'")
    scripts = " ".join(hashes["script"]) or "'none'"
    styles = " ".join(hashes["style"]) or "'none'"
    return (
        "default-src 'none'; "
        f"script-src {scripts}; "
        f"style-src {styles}; "
        "connect-src 'self'; img-src data:; form-action 'none'; base-uri 'none'; "
        "frame-ancestors 'none'"
    )


@dataclass(frozen=True)
class _Tick:
    """The feed's state as one stream sees it."""

    stopped: bool
    ticks: int  # snapshot attempts so far, successful or not
    seq: int  # successful snapshots so far (-1: payload withheld)
    payload: bytes | None


class _Feed:
    """Takes one snapshot a second while at least one stream is open, for all of them."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._snapshot = snapshot
        self._call_lock = threading.Lock()  # snapshot() never runs in two threads at once
        self.cond = threading.Condition()
        self.ticks = 0  # attempts, successful or not: streams wake on each
        self.seq = 0  # successful snapshots
        self.payload: bytes | None = None
        self._taken_at = -math.inf  # time.monotonic() of the last attempt
        self._subscribers = 0
        self._failing = False
        self.stopped = False
        self._thread = threading.Thread(target=self._run, name="observers-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
        if self._thread.is_alive():  # a slow snapshot() must not hold stop() up for long
            self._thread.join(timeout=0.2)

    def take(self) -> bytes:
        """The snapshot now, as JSON (raises what ``snapshot()`` raises)."""
        with self._call_lock:
            return _json_bytes(self._snapshot())

    def subscribe(self) -> _Tick:
        """Count a stream in: the latest snapshot if it is fresh (else one is taken at once)."""
        with self.cond:
            self._subscribers += 1
            self.cond.notify_all()
            if self.payload is not None and time.monotonic() - self._taken_at < TICK_S:
                return _Tick(self.stopped, self.ticks, self.seq, self.payload)
            return _Tick(self.stopped, self.ticks, -1, None)

    def next_tick(self, seen_ticks: int, timeout: float) -> _Tick:
        """Wait for the next attempt after ``seen_ticks``, or the stop, at most ``timeout`` s."""
        with self.cond:
            self.cond.wait_for(lambda: self.stopped or self.ticks != seen_ticks, timeout)
            return _Tick(self.stopped, self.ticks, self.seq, self.payload)

    def unsubscribe(self) -> None:
        with self.cond:
            self._subscribers -= 1

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.stopped:
                    if self._subscribers > 0:
                        due = self._taken_at + TICK_S - time.monotonic()
                        if due <= 0:
                            break
                        self.cond.wait(due)
                    else:
                        self.cond.wait()
                if self.stopped:
                    return
                self._taken_at = time.monotonic()
            try:
                payload: bytes | None = self.take()
            except Exception:
                # Said once per spell of failures, not once a second.
                level = logging.DEBUG if self._failing else logging.WARNING
                log.log(level, "observers' page: the snapshot failed", exc_info=True)
                payload = None
            self._failing = payload is None
            with self.cond:
                self.ticks += 1
                if payload is not None:
                    self.seq += 1
                    self.payload = payload
                self.cond.notify_all()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    app: ObserversServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Never on stderr: the coordinator's console owns the terminal.
        log.debug("observers' page: error serving %s", client_address, exc_info=True)


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "inoculate-gameday"
    timeout = SOCKET_TIMEOUT_S

    # -- routing ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        if not self._host_allowed():
            return
        path = self.path.split("?", 1)[0]
        app = self.server.app
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, app.page, "text/html; charset=utf-8", csp=app.csp)
        elif path == "/events":
            self._stream()
        elif path == "/snapshot":
            try:
                body = app.feed.take()
            except Exception:
                log.warning("observers' page: the snapshot failed", exc_info=True)
                self._error(HTTPStatus.SERVICE_UNAVAILABLE, "the snapshot is not available")
                return
            self._send(HTTPStatus.OK, body, "application/json")
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no such page: {path}")

    def do_POST(self) -> None:
        if not self._host_allowed():
            return
        path = self.path.split("?", 1)[0]
        if path != "/notes":
            self._error(HTTPStatus.NOT_FOUND, f"no such endpoint: {path} (this page is read-only)")
            return
        self._note()

    # -- endpoints ----------------------------------------------------------------------------

    def _note(self) -> None:
        self.close_connection = True
        if self.headers.get_content_type() != "application/json":
            self._error(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "expected Content-Type: application/json"
            )
            return
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self._error(HTTPStatus.LENGTH_REQUIRED, "expected a Content-Length")
            return
        try:
            length = int(length_header)
        except ValueError:
            length = -1
        if length < 0:
            self._error(HTTPStatus.BAD_REQUEST, "expected a Content-Length of 0 or more bytes")
            return
        if length > MAX_BODY_BYTES:
            self._error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"expected a body of at most {MAX_BODY_BYTES} bytes",
            )
            return
        body = self.rfile.read(length)
        try:
            note = _Note.model_validate_json(body)
        except ValidationError as exc:
            self._error(HTTPStatus.BAD_REQUEST, _explain(exc))
            return
        try:
            self.server.app.add_note(note.text, note.by)
        except Exception:
            log.warning("observers' page: the note could not be recorded", exc_info=True)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "the note could not be recorded")
            return
        self.send_response(HTTPStatus.NO_CONTENT)
        self._common_headers()
        self.end_headers()

    def _stream(self) -> None:
        app = self.server.app
        feed = app.feed
        if not app.open_stream(self.connection):
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, "too many observers at once")
            return
        self.close_connection = True
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("X-Accel-Buffering", "no")
            self._common_headers()
            self.end_headers()
            self.wfile.write(b"retry: 2000\n\n")
            self.wfile.flush()
            self._pump(feed)
        except OSError:
            pass  # the observer left (or stop() cut the stream)
        finally:
            app.close_stream(self.connection)

    def _pump(self, feed: _Feed) -> None:
        tick = feed.subscribe()
        try:
            if tick.payload is not None:
                self._event(b"data: " + tick.payload + b"\n\n")
            sent_seq = tick.seq
            while True:
                tick = feed.next_tick(tick.ticks, timeout=2 * TICK_S)
                if tick.stopped:
                    self._event(b'event: closed\ndata: "the observers\' page has stopped"\n\n')
                    return
                if tick.payload is None or tick.seq == sent_seq:
                    self._event(b": heartbeat\n\n")
                else:
                    self._event(b"data: " + tick.payload + b"\n\n")
                    sent_seq = tick.seq
        finally:
            feed.unsubscribe()

    # -- helpers ------------------------------------------------------------------------------

    def _event(self, chunk: bytes) -> None:
        self.wfile.write(chunk)
        self.wfile.flush()

    def _host_allowed(self) -> bool:
        allowed = self.server.app.allowed_hosts
        host = self.headers.get("Host")
        if allowed is None or host is None or host.lower() in allowed:
            return True
        self._error(HTTPStatus.MISDIRECTED_REQUEST, "this page answers on its own address only")
        return False

    def _common_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, csp: str = "") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self._common_headers()
        if csp:
            self.send_header("Content-Security-Policy", csp)
            self.send_header("X-Frame-Options", "DENY")
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: HTTPStatus, message: str) -> None:
        self.close_connection = True
        self._send(status, _json_bytes({"error": message}), "application/json")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("observers' page: %s " + format, self.address_string(), *args)


def _explain(exc: ValidationError) -> str:
    """``field: message`` for each problem of a note's body."""
    problems = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "body"
        if error["type"] in ("json_invalid", "model_type"):
            problems.append("body: expected a JSON object {text, by}")
        elif error["type"] == "extra_forbidden":
            problems.append(f"{field}: unexpected field (expected only text and by)")
        elif field == "text" and error["type"] in ("string_too_short", "string_too_long"):
            problems.append(f"text: expected 1 to {MAX_NOTE_CHARS} characters")
        elif field == "by" and error["type"] in ("string_too_short", "string_too_long"):
            problems.append(f"by: expected a name of 1 to {MAX_NAME_CHARS} characters")
        else:
            problems.append(f"{field}: {error['msg']}")
    return "; ".join(problems)


class ObserversServer:
    """The observers' page of one gameday, served from its own threads.

    ``snapshot()`` returns the live snapshot (already scrubbed of secrets); ``add_note(text,
    by)`` records an observer's note. ``bind`` defaults to loopback: see the module's warning
    before binding anything else. ``port=0`` picks a free port.
    """

    def __init__(
        self,
        snapshot: Callable[[], dict[str, Any]],
        add_note: Callable[[str, str], None],
        bind: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.add_note = add_note
        self.bind = bind
        self.port = port
        self.feed = _Feed(snapshot)
        text = resources.files(__package__).joinpath(PAGE_FILE).read_text(encoding="utf-8")
        self.page = text.encode("utf-8")
        self.csp = _csp(text)
        self.allowed_hosts: frozenset[str] | None = None
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._streams: set[socket.socket] = set()
        self._streams_lock = threading.Condition()
        self._url = ""

    @property
    def url(self) -> str:
        """The page's address (empty before :meth:`start`)."""
        return self._url

    def start(self) -> str:
        """Bind, serve in daemon threads, and return the page's URL (OSError if the address
        cannot be bound, e.g. a port in use)."""
        if self._server is not None:
            return self._url
        server_class = _HTTPServer6 if ":" in self.bind else _HTTPServer
        server = server_class((self.bind, self.port), _Handler)
        server.app = self
        host, port = server.server_address[0], server.server_address[1]
        address = ipaddress.ip_address(str(host).split("%", 1)[0])
        if address.is_loopback:
            named = f"[{host}]" if address.version == 6 else str(host)
            self.allowed_hosts = frozenset(
                {f"{named}:{port}", f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"}
            )
            shown = named
        else:
            log.warning(
                "the observers' page listens on %s:%s: anyone who can reach it can read the "
                "gameday and add notes",
                host,
                port,
            )
            shown = socket.gethostname() if address.is_unspecified else str(host)
            shown = f"[{shown}]" if ":" in shown else shown
        self._server = server
        self.feed.start()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="observers-http"
        )
        self._thread.daemon = True
        self._thread.start()
        self._url = f"http://{shown}:{port}/"
        return self._url

    def stop(self) -> None:
        """Stop serving: every open event stream gets ``event: closed`` and ends (< 1 s)."""
        server, self._server = self._server, None
        if server is None:
            return
        self.feed.stop()
        deadline = time.monotonic() + STOP_GRACE_S
        with self._streams_lock:
            self._streams_lock.wait_for(lambda: not self._streams, STOP_GRACE_S)
            stuck = list(self._streams)
        for sock in stuck:  # a stream blocked on a client that does not read
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=max(0.1, deadline + 0.5 - time.monotonic()))

    def open_stream(self, sock: socket.socket) -> bool:
        """Count an event stream in (False when :data:`MAX_STREAMS` are open or stopping)."""
        with self._streams_lock:
            if self.feed.stopped or len(self._streams) >= MAX_STREAMS:
                return False
            self._streams.add(sock)
            return True

    def close_stream(self, sock: socket.socket) -> None:
        """Count an event stream out."""
        with self._streams_lock:
            self._streams.discard(sock)
            self._streams_lock.notify_all()

    def __enter__(self) -> ObserversServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
