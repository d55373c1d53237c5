"""The gateway's view of one upstream service: replicas, retries, timeout and breaker.

A request goes to the next replica in round-robin order and fails over to the following
replica when it cannot connect. An *attempt* fails on a timeout, a 5xx or when every
replica refused; idempotent requests are retried after a backoff (doubling), and the
breaker sees every attempt's outcome.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from prometheus_client import Counter

from inoculate.demo.shop.breaker import Breaker
from inoculate.demo.shop.service import DEADLINE_HEADER, json_response

__all__ = ["UpstreamFailure", "UpstreamPool", "UpstreamResponse", "upstream_session"]

# Headers of an upstream answer that the gateway passes on.
_PASSED_HEADERS = ("X-Instance",)


def upstream_session() -> aiohttp.ClientSession:
    """A client session with a keep-alive pool, and no timeout of its own.

    The per-request timeout is the ``gateway_timeout_s`` knob; aiohttp's default of
    5 minutes would silently cap "no timeout".
    """
    connector = aiohttp.TCPConnector(limit=512, keepalive_timeout=30.0, use_dns_cache=False)
    no_timeout = aiohttp.ClientTimeout(total=None, connect=None, sock_read=None, sock_connect=None)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=no_timeout,
        auto_decompress=False,
        skip_auto_headers=("User-Agent",),
    )


@dataclass(frozen=True)
class UpstreamResponse:
    """An upstream's answer, fully read."""

    status: int
    body: bytes
    content_type: str
    headers: Mapping[str, str]

    def to_web(self, extra_headers: Mapping[str, str] | None = None) -> web.Response:
        """Return it as the gateway's response."""
        headers = dict(self.headers)
        if extra_headers:
            headers.update(extra_headers)
        response = web.Response(body=self.body, status=self.status, headers=headers)
        response.content_type = self.content_type
        return response


class UpstreamFailure(Exception):
    """The upstream could not give a usable answer (after retries and fail-over)."""

    def __init__(
        self, upstream: str, reason: str, status: int, response: UpstreamResponse | None = None
    ) -> None:
        super().__init__(f"{upstream}: {reason}")
        self.upstream = upstream
        self.reason = reason
        self.status = status
        self.response = response

    def to_web(self) -> web.Response:
        """The gateway's answer: the upstream's 5xx as is, else 502/503/504 with the reason."""
        if self.response is not None:
            return self.response.to_web()
        return json_response({"error": str(self)}, status=self.status)


class UpstreamPool:
    """Replicas of one upstream service behind round robin, retries, a timeout and a breaker."""

    def __init__(
        self,
        name: str,
        urls: Sequence[str],
        session: aiohttp.ClientSession,
        breaker: Breaker,
        outcomes: Counter,
        *,
        timeout_s: float | None,
        retries: int,
        backoff_s: float,
    ) -> None:
        if not urls:
            raise ValueError(f"upstream {name} needs at least one URL")
        self.name = name
        self.breaker = breaker
        self._urls = tuple(url.rstrip("/") for url in urls)
        self._session = session
        self._outcomes = {
            outcome: outcomes.labels(name, outcome)
            for outcome in ("ok", "status_5xx", "connect_error", "timeout", "circuit_open")
        }
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._retries = retries
        self._backoff_s = backoff_s
        self._next = itertools.count()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool,
    ) -> UpstreamResponse:
        """Send a request; return a non-5xx answer or raise :class:`UpstreamFailure`."""
        attempts = 1 + (self._retries if idempotent else 0)
        failure = UpstreamFailure(self.name, "no attempt made", 502)
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self._backoff_s * 2 ** (attempt - 1))
            if not self.breaker.allow():
                self._outcomes["circuit_open"].inc()
                failure = UpstreamFailure(self.name, "circuit open", 503)
                continue
            try:
                response = await self._send_to_a_replica(method, path, body, headers, idempotent)
            except TimeoutError:
                self._outcomes["timeout"].inc()
                failure = UpstreamFailure(self.name, "timed out", 504)
            except aiohttp.ClientError as exc:
                self._outcomes["connect_error"].inc()
                failure = UpstreamFailure(self.name, f"unreachable ({exc!r})", 502)
            else:
                if response.status < 500:
                    self.breaker.record_success()
                    self._outcomes["ok"].inc()
                    return response
                self._outcomes["status_5xx"].inc()
                failure = UpstreamFailure(
                    self.name, f"answered {response.status}", response.status, response
                )
            self.breaker.record_failure()
        raise failure

    async def _send_to_a_replica(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: Mapping[str, str] | None,
        idempotent: bool,
    ) -> UpstreamResponse:
        first = next(self._next)
        count = len(self._urls)
        for offset in range(count):
            url = self._urls[(first + offset) % count]
            last_replica = offset == count - 1
            try:
                return await self._send(method, url + path, body, headers)
            except aiohttp.ClientConnectorError:
                # Nothing was sent: always safe to try the next replica.
                if last_replica:
                    raise
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                # The request may have been processed; only an idempotent one may go again.
                if last_replica or not idempotent:
                    raise
        raise AssertionError("unreachable: the last replica re-raises")

    async def _send(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str] | None
    ) -> UpstreamResponse:
        if self._timeout.total is not None:
            deadline = f"{time.time() + self._timeout.total:.3f}"
            headers = {**(headers or {}), DEADLINE_HEADER: deadline}
        async with self._session.request(
            method, url, data=body, headers=headers, timeout=self._timeout
        ) as response:
            payload = await response.read()
            passed = {h: response.headers[h] for h in _PASSED_HEADERS if h in response.headers}
            return UpstreamResponse(response.status, payload, response.content_type, passed)
