"""HTTP-aware toxics (beyond Toxiproxy): they act on whole HTTP/1.1 requests, not on bytes.

- ``http_status`` (``status_code`` = 503, ``percentage`` from 0 to 100): that share of
  the matching requests is answered by the proxy with that status;
- ``http_fail_first`` (``count``, ``status_code`` = 503): the first ``count`` matching
  requests (over all connections of the proxy) are answered with that status;
- ``http_latency`` (``latency``, ``jitter``: ms): matching requests reach the upstream
  ``latency`` ± ``jitter`` later.

Every type also takes ``path`` (a regular expression matched at the start of the request
target, e.g. ``"/products"``; empty matches all) and ``method`` (e.g. ``"GET"``; empty
matches all). They go on the ``upstream`` stream (where requests flow; it is their default).
A request answered by the proxy never reaches the upstream; its body is dropped and the
connection stays usable (keep-alive). ``toxicity`` still picks connections, as for every
toxic; ``percentage`` picks requests within them.

The requests are framed with ``h11`` used as a passive observer: it tells exactly where
each request (head, body, chunked or not) ends in the byte stream, so pieces can be held,
delayed or dropped per request. A stream that is not HTTP/1.1 (or that upgrades, e.g. to a
WebSocket) passes through untouched from that point. Limitation: the proxy's answer is
queued with the upstream's answers in arrival order, which is right for clients that wait
for each answer (all common HTTP clients) but not for pipelined requests behind it.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

import h11
from pydantic import Field, field_validator

from inoculate.toxiproxy_server._toxic import Chunk, Toxic, ToxicStub

__all__ = ["HttpFailFirstToxic", "HttpLatencyToxic", "HttpStatusToxic", "RequestFramer"]


@dataclass
class RequestHead:
    """A request seen on the stream, and what the toxic decided for it."""

    method: str
    target: str
    verdict: Any = None


@dataclass(frozen=True)
class Piece:
    """Bytes of the stream: part of ``request`` (None: not HTTP, pass as is)."""

    request: RequestHead | None
    data: bytes


class RequestFramer:
    """Cuts a client's byte stream into requests at their exact boundaries.

    h11 checks both sides of a conversation, so after each request it is handed an empty
    ``200`` to "send" (never written anywhere) to move on to the next request.
    """

    def __init__(self) -> None:
        self._h11 = h11.Connection(h11.SERVER)
        self._pending = b""
        self._current: RequestHead | None = None
        self._raw = False

    def take_pending(self) -> bytes:
        """Bytes received but not yet framed (an incomplete request head)."""
        pending, self._pending = self._pending, b""
        return pending

    def feed(self, data: bytes) -> list[Piece]:
        """Frame ``data``; bytes of an incomplete request head are kept for the next call."""
        if self._raw:
            return [Piece(None, data)]
        self._pending += data
        self._h11.receive_data(data)
        pieces: list[Piece] = []
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError:
                return [*pieces, self._go_raw()]
            if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                return pieces
            if event is h11.PAUSED:  # an upgrade or CONNECT: not HTTP/1.1 any more
                return [*pieces, self._go_raw()]
            consumed = len(self._pending) - len(self._h11.trailing_data[0])
            data_of_event, self._pending = self._pending[:consumed], self._pending[consumed:]
            if isinstance(event, h11.Request):
                self._current = RequestHead(event.method.decode(), event.target.decode())
            pieces.append(Piece(self._current, data_of_event))
            if isinstance(event, h11.EndOfMessage) and not self._next_cycle():
                return [*pieces, self._go_raw()]

    def _next_cycle(self) -> bool:
        try:
            self._h11.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
            self._h11.send(h11.EndOfMessage())
            self._h11.start_next_cycle()
        except h11.LocalProtocolError:  # the client asked to close after this request
            return False
        return True

    def _go_raw(self) -> Piece:
        self._raw = True
        return Piece(None, self.take_pending())


def error_response(status_code: int, toxic_name: str) -> bytes:
    """The proxy's own answer to a request it fails."""
    body = json.dumps({"error": f"injected by toxic {toxic_name}", "status": status_code}).encode()
    try:
        reason = HTTPStatus(status_code).phrase
    except ValueError:
        reason = "Injected"
    head = (
        f"HTTP/1.1 {status_code} {reason}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-Inoculate-Toxic: {toxic_name}\r\n\r\n"
    )
    return head.encode("latin-1") + body


@dataclass(frozen=True)
class _Pass:
    pass


@dataclass(frozen=True)
class _Fail:
    status_code: int


@dataclass(frozen=True)
class _Delay:
    seconds: float


@dataclass(frozen=True)
class _HoldUntil:
    when: float  # loop time the request may go on


_PASS = _Pass()


class _HttpToxic(Toxic):
    """Frames requests and applies a per-request verdict (``decide``) to their bytes."""

    default_stream: ClassVar[str] = "upstream"
    streams: ClassVar[tuple[str, ...]] = ("upstream",)
    path: str = Field("", description="regular expression matched at the start of the target")
    method: str = Field("", description="HTTP method to match; empty matches every method")

    @field_validator("path")
    @classmethod
    def _valid_regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"path is not a regular expression: {exc}") from exc
        return value

    def matches(self, request: RequestHead) -> bool:
        """Whether the request is one this toxic is about."""
        if self.method and request.method.upper() != self.method.upper():
            return False
        return re.match(self.path, request.target) is not None

    def decide(self, stub: ToxicStub) -> _Pass | _Fail | _Delay:
        """What to do with one matching request."""
        raise NotImplementedError

    def new_state(self) -> RequestFramer:
        """Per connection: the request framer (kept while the toxic is updated)."""
        return RequestFramer()

    def cleanup(self, stub: ToxicStub) -> None:
        """Removed: an incomplete request head it was holding goes on."""
        pending = stub.state.take_pending()
        if pending:
            stub.write(Chunk(pending, stub.now()))

    async def pipe(self, stub: ToxicStub) -> None:
        framer: RequestFramer = stub.state
        while (chunk := await stub.read()) is not None:
            for piece in framer.feed(chunk.data):
                await self._apply(stub, piece, chunk.at)

    async def _apply(self, stub: ToxicStub, piece: Piece, at: float) -> None:
        request = piece.request
        if request is None:
            stub.write(Chunk(piece.data, at))
            return
        if request.verdict is None:
            verdict = self.decide(stub) if self.matches(request) else _PASS
            request.verdict = verdict
            if isinstance(verdict, _Fail):
                stub.send_back(error_response(verdict.status_code, stub.toxic_name))
            elif isinstance(verdict, _Delay):
                request.verdict = _HoldUntil(at + verdict.seconds)
        verdict = request.verdict
        if isinstance(verdict, _Fail):
            return  # the request never reaches the upstream
        if isinstance(verdict, _HoldUntil):
            try:
                await stub.sleep_until(verdict.when)
            except asyncio.CancelledError:
                stub.write(Chunk(piece.data, at))
                raise
        stub.write(Chunk(piece.data, at))


class HttpStatusToxic(_HttpToxic):
    """Answer ``percentage`` % of matching requests with ``status_code`` from the proxy."""

    type_name: ClassVar[str] = "http_status"
    status_code: int = Field(503, ge=100, le=599)
    percentage: float = Field(100.0, ge=0.0, le=100.0)

    def decide(self, stub: ToxicStub) -> _Pass | _Fail | _Delay:
        return _Fail(self.status_code) if random.random() * 100 < self.percentage else _PASS


@dataclass
class _Remaining:
    count: int


class HttpFailFirstToxic(_HttpToxic):
    """Answer the first ``count`` matching requests (all connections) with ``status_code``."""

    type_name: ClassVar[str] = "http_fail_first"
    count: int = Field(1, ge=0)
    status_code: int = Field(503, ge=100, le=599)

    def new_shared_state(self) -> _Remaining:
        """How many requests are still to fail (shared by every connection of the proxy)."""
        return _Remaining(self.count)

    def decide(self, stub: ToxicStub) -> _Pass | _Fail | _Delay:
        remaining: _Remaining = stub.shared
        if remaining.count <= 0:
            return _PASS
        remaining.count -= 1
        return _Fail(self.status_code)


class HttpLatencyToxic(_HttpToxic):
    """Delay matching requests by ``latency`` ± ``jitter`` ms before they reach the upstream."""

    type_name: ClassVar[str] = "http_latency"
    latency: int = Field(0, ge=0, description="milliseconds")
    jitter: int = Field(0, ge=0, description="milliseconds")

    def decide(self, stub: ToxicStub) -> _Pass | _Fail | _Delay:
        jitter = random.uniform(-self.jitter, self.jitter) if self.jitter else 0.0
        return _Delay(max(0.0, self.latency + jitter) / 1000.0)
