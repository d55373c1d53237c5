"""A proxy (listener + upstream address + toxics) and the collection the API manages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any, cast

from inoculate.toxiproxy_server._errors import (
    ERR_BAD_REQUEST_BODY,
    ERR_PROXY_ALREADY_EXISTS,
    ERR_PROXY_NOT_FOUND,
    ERR_TOXIC_ALREADY_EXISTS,
    ERR_TOXIC_NOT_FOUND,
    ApiError,
)
from inoculate.toxiproxy_server._link import EOF, Connection
from inoculate.toxiproxy_server._toxic import STREAMS, ToxicWrapper

__all__ = ["Proxy", "ProxyCollection", "format_address", "parse_address"]

_log = logging.getLogger("inoculate.netproxy")
LISTEN_BACKLOG = 1024


def parse_address(address: str, field: str) -> tuple[str | None, int]:
    """``"host:port"`` / ``"[::1]:port"`` / ``":port"`` → (host or None for all, port)."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ERR_BAD_REQUEST_BODY.with_detail(f"{field} {address!r} is not host:port")
    host = host.strip("[]")
    return (host or None), int(port_text)


def format_address(sockname: tuple[Any, ...]) -> str:
    """A bound socket's address as Toxiproxy shows it (``127.0.0.1:8000``, ``[::]:8000``)."""
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _ClientSide(asyncio.Protocol):
    """An accepted client socket: reads feed the upstream link."""

    def __init__(self, proxy: Proxy) -> None:
        self._proxy = proxy
        self._conn: Connection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        client = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport
        client.pause_reading()  # until the upstream connection is up
        self._conn = Connection(client, self._proxy.forget)
        self._proxy.connections.add(self._conn)
        asyncio.get_running_loop().create_task(self._proxy.connect_upstream(self._conn))

    def data_received(self, data: bytes) -> None:
        assert self._conn is not None
        if self._conn.upstream is not None:
            self._conn.upstream.feed(data)
        else:  # reading is paused until then, but a loop may deliver what it already read
            self._conn.early.append(data)

    def eof_received(self) -> bool:
        assert self._conn is not None
        if self._conn.upstream is not None:
            self._conn.upstream.feed_end(EOF)
        else:
            self._conn.early.append(EOF)
        return True  # keep the socket open for the other direction

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._conn.source_lost(self._conn.upstream, exc)

    def pause_writing(self) -> None:
        if self._conn is not None and self._conn.downstream is not None:
            self._conn.downstream.sink_paused(True)

    def resume_writing(self) -> None:
        if self._conn is not None and self._conn.downstream is not None:
            self._conn.downstream.sink_paused(False)


class _UpstreamSide(asyncio.Protocol):
    """The socket to the upstream: reads feed the downstream link."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def data_received(self, data: bytes) -> None:
        if self._conn.downstream is not None:
            self._conn.downstream.feed(data)
        else:  # the upstream spoke first, before join()
            self._conn.early_down.append(data)

    def eof_received(self) -> bool:
        if self._conn.downstream is not None:
            self._conn.downstream.feed_end(EOF)
        else:
            self._conn.early_down.append(EOF)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._conn.source_lost(self._conn.downstream, exc)

    def pause_writing(self) -> None:
        if self._conn.upstream is not None:
            self._conn.upstream.sink_paused(True)

    def resume_writing(self) -> None:
        if self._conn.upstream is not None:
            self._conn.upstream.sink_paused(False)


class Proxy:
    """One proxy: listens on ``listen``, connects each client to ``upstream`` through toxics."""

    def __init__(self, name: str, listen: str, upstream: str) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.toxics: dict[str, list[ToxicWrapper]] = {stream: [] for stream in STREAMS}
        self.connections: set[Connection] = set()
        self._server: asyncio.Server | None = None

    def to_json(self) -> dict[str, Any]:
        """The proxy as the API shows it, with its toxics."""
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [toxic.to_json() for toxic in self.all_toxics()],
        }

    # --- listening ---

    async def start(self) -> None:
        """Listen (a no-op when already enabled); bind errors answer 500 like Toxiproxy."""
        if self.enabled:
            return
        host, port = parse_address(self.listen, "listen")
        parse_address(self.upstream, "upstream")
        try:
            self._server = await asyncio.get_running_loop().create_server(
                lambda: _ClientSide(self), host, port, reuse_address=True, backlog=LISTEN_BACKLOG
            )
        except OSError as exc:
            raise ApiError(f"listen tcp {self.listen}: {exc.strerror or exc}", 500) from exc
        self.listen = format_address(self._server.sockets[0].getsockname())
        self.enabled = True

    async def stop(self) -> None:
        """Stop listening and close every connection (the ``down`` fault)."""
        if not self.enabled:
            return
        self.enabled = False
        if self._server is not None:
            self._server.close()
            self._server = None
        for conn in list(self.connections):
            conn.close()

    async def update(self, listen: str, upstream: str, enabled: bool) -> None:
        """Toxiproxy's update: a new address restarts the proxy; ``enabled`` starts or stops."""
        parse_address(listen, "listen")
        parse_address(upstream, "upstream")
        if listen != self.listen or upstream != self.upstream:
            await self.stop()
            self.listen, self.upstream = listen, upstream
        if enabled and not self.enabled:
            await self.start()
        elif not enabled:
            await self.stop()

    # --- connections ---

    async def connect_upstream(self, conn: Connection) -> None:
        """Connect a new client to the upstream, then let bytes flow."""
        host, port = parse_address(self.upstream, "upstream")
        loop = asyncio.get_running_loop()
        try:
            server, _ = await loop.create_connection(lambda: _UpstreamSide(conn), host, port)
        except OSError as exc:
            _log.info("proxy %s: cannot connect to upstream %s: %s", self.name, self.upstream, exc)
            conn.close()
            return
        if conn.closed:
            server.close()
            return
        conn.join(server, self.toxics["upstream"], self.toxics["downstream"])
        conn.client.resume_reading()

    def forget(self, conn: Connection) -> None:
        self.connections.discard(conn)

    def _links(self, stream: str) -> Iterator[Any]:
        for conn in list(self.connections):
            link = conn.link(stream)
            if link is not None and not conn.closed:
                yield link

    # --- toxics ---

    def all_toxics(self) -> list[ToxicWrapper]:
        return [toxic for stream in STREAMS for toxic in self.toxics[stream]]

    def toxic(self, name: str) -> ToxicWrapper:
        for toxic in self.all_toxics():
            if toxic.name == name:
                return toxic
        raise ERR_TOXIC_NOT_FOUND

    def add_toxic(self, wrapper: ToxicWrapper) -> None:
        """Add a toxic to new connections and to every open one."""
        if any(toxic.name == wrapper.name for toxic in self.all_toxics()):
            raise ERR_TOXIC_ALREADY_EXISTS
        self.toxics[wrapper.stream].append(wrapper)
        for link in self._links(wrapper.stream):
            link.add(wrapper)

    async def update_toxic(self, wrapper: ToxicWrapper) -> None:
        chain = self.toxics[wrapper.stream]
        index = next(i for i, toxic in enumerate(chain) if toxic.name == wrapper.name)
        chain[index] = wrapper
        for link in self._links(wrapper.stream):
            await link.update(wrapper)

    async def remove_toxic(self, name: str) -> None:
        wrapper = self.toxic(name)
        self.toxics[wrapper.stream].remove(wrapper)
        for link in self._links(wrapper.stream):
            await link.remove(name)

    async def remove_all_toxics(self) -> None:
        for toxic in self.all_toxics():
            await self.remove_toxic(toxic.name)


class ProxyCollection:
    """The proxies of one server, by name. Mutations take the lock: one at a time."""

    def __init__(self) -> None:
        self.proxies: dict[str, Proxy] = {}
        self.lock = asyncio.Lock()

    def get(self, name: str) -> Proxy:
        try:
            return self.proxies[name]
        except KeyError:
            raise ERR_PROXY_NOT_FOUND from None

    async def add(self, proxy: Proxy, start: bool) -> None:
        if proxy.name in self.proxies:
            raise ERR_PROXY_ALREADY_EXISTS
        if start:
            await proxy.start()
        self.proxies[proxy.name] = proxy

    async def add_or_replace(self, proxy: Proxy, start: bool) -> Proxy:
        """Populate's rule: an existing proxy with the same addresses is kept as it is."""
        existing = self.proxies.get(proxy.name)
        if existing is not None:
            if existing.listen == proxy.listen and existing.upstream == proxy.upstream:
                return existing
            await existing.stop()
        if start:
            await proxy.start()
        self.proxies[proxy.name] = proxy
        return proxy

    async def remove(self, name: str) -> None:
        proxy = self.get(name)
        await proxy.stop()
        del self.proxies[name]

    async def clear(self) -> None:
        for name in list(self.proxies):
            with contextlib.suppress(ApiError):
                await self.remove(name)
