"""One proxied TCP connection: two links (client → upstream, upstream → client), each a chain
of toxic stages between the socket it reads and the socket it writes.

With no toxic on a link, bytes go straight from ``data_received`` to the other socket's
``write`` (the fast path: no task, no queue, no copy). Each toxic added to a link becomes a
:class:`Stage`: a task running the toxic's ``pipe`` between the stage's input queue and the
next stage (or the :class:`Sink`). Stages are added at the end and removed or updated on live
connections; the event loop runs everything on one thread, so re-pointing ``next`` between
two awaits is atomic, and data already queued moves on in order.

End of stream: a peer's FIN travels through the chain as ``EOF`` and half-closes the other
socket (``write_eof``); when both links ended the connection closes. A toxic's
``stub.close()`` travels as ``CLOSE`` (after the data written before it) and closes the
whole connection; ``stub.reset()`` aborts both sockets with a TCP RST at once.

Backpressure: a link stops reading its source while the socket it writes is paused by the
kernel's send buffer, or while more than ``QUEUE_HIGH_WATER`` bytes wait in its stages.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from inoculate.toxiproxy_server._toxic import (
    Chunk,
    CleanupToxic,
    NoopToxic,
    StatefulToxic,
    ToxicStub,
    ToxicWrapper,
)

__all__ = ["CLOSE", "EOF", "Connection", "Link", "Stage"]

QUEUE_HIGH_WATER = 1 << 20
QUEUE_LOW_WATER = 1 << 18
_NOOP = NoopToxic()


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


EOF = _Marker("EOF")  # the source half-closed: pass a FIN on
CLOSE = _Marker("CLOSE")  # close the whole connection once the data before it is written

Item = Chunk | _Marker


class _Queue:
    """A stage's input: FIFO of chunks and end markers, with the link's byte accounting."""

    __slots__ = ("_items", "_link", "_waiter")

    def __init__(self, link: Link) -> None:
        self._items: deque[Item] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._link = link

    def put(self, item: Item) -> None:
        self._items.append(item)
        if isinstance(item, Chunk):
            self._link.account(len(item.data))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Item:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        if isinstance(item, Chunk):
            self._link.account(-len(item.data))
        return item

    def drain(self) -> list[Item]:
        items = list(self._items)
        self._items.clear()
        self._link.account(-sum(len(i.data) for i in items if isinstance(i, Chunk)))
        return items


class Sink:
    """The end of a link: the socket it writes to."""

    __slots__ = ("_link",)

    def __init__(self, link: Link) -> None:
        self._link = link

    def put(self, item: Item) -> None:
        if isinstance(item, Chunk):
            self._link.write(item.data)
        elif item is EOF:
            self._link.connection.link_ended(self._link)
        else:
            self._link.connection.close()


class Stage:
    """One toxic on one link: its input queue, its per-connection state and its task."""

    def __init__(self, link: Link, wrapper: ToxicWrapper) -> None:
        self.link = link
        self.wrapper = wrapper
        self.queue = _Queue(link)
        self.next: Stage | Sink = link.sink
        toxic = wrapper.toxic
        self.state: Any = toxic.new_state() if isinstance(toxic, StatefulToxic) else None
        self.stub = ToxicStub(self)
        self.task: asyncio.Task[None] | None = None
        self._end: _Marker | None = None
        self._ended_connection = False

    def put(self, item: Item) -> None:
        self.queue.put(item)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        # The one place toxicity applies: with probability 1 - toxicity this connection
        # gets a no-op instead of the toxic (toxicity 0: never the toxic).
        toxic = self.wrapper.toxic if random.random() < self.wrapper.toxicity else _NOOP
        await toxic.pipe(self.stub)
        if not self._ended_connection and self._end is None:
            await _NOOP.pipe(self.stub)  # a toxic that returned early lets the rest through
        if self._ended_connection:
            while await self.next_input() is not None:
                pass  # the connection is closing: nothing more goes out
        else:
            self.next.put(self._end or EOF)

    async def interrupt(self) -> None:
        """Stop the toxic (it flushes what it holds); the queue keeps what it did not read."""
        task = self.task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    # --- what ToxicStub forwards to ---

    async def next_input(self) -> Chunk | None:
        if self._end is not None:
            return None
        item = await self.queue.get()
        if isinstance(item, Chunk):
            return item
        self._end = item
        return None

    def emit(self, chunk: Chunk) -> None:
        self.next.put(chunk)

    def close_connection(self) -> None:
        self._ended_connection = True
        self.next.put(CLOSE)

    def reset_connection(self) -> None:
        self._ended_connection = True
        self.link.connection.reset()

    def send_back(self, data: bytes) -> None:
        self.link.opposite.feed(data)


class Link:
    """One direction of a connection: source socket → stages → destination socket."""

    def __init__(
        self,
        connection: Connection,
        stream: str,
        source: asyncio.Transport,
        dest: asyncio.Transport,
    ) -> None:
        self.connection = connection
        self.stream = stream
        self._source = source
        self._dest = dest
        self.sink = Sink(self)
        self.head: Stage | Sink = self.sink
        self.stages: list[Stage] = []
        self._buffered = 0
        self._paused_by_queue = False
        self._paused_by_sink = False

    @property
    def opposite(self) -> Link:
        """The link of the other direction of the same connection."""
        return self.connection.other(self)

    def feed(self, data: bytes) -> None:
        """Bytes read from the source."""
        head = self.head
        if head is self.sink:
            self.write(data)  # fast path: no toxic on this link
        else:
            head.put(Chunk(data, asyncio.get_running_loop().time()))

    def feed_end(self, marker: _Marker) -> None:
        """The source ended (EOF) or died (CLOSE)."""
        self.head.put(marker)

    def write(self, data: bytes) -> None:
        if not self._dest.is_closing():
            self._dest.write(data)

    def write_eof(self) -> None:
        if not self._dest.is_closing() and self._dest.can_write_eof():
            self._dest.write_eof()

    # --- toxics on a live link ---

    def add(self, wrapper: ToxicWrapper) -> None:
        """Append a toxic at the end of the chain and start it."""
        stage = Stage(self, wrapper)
        if self.stages:
            self.stages[-1].next = stage
        else:
            self.head = stage
        self.stages.append(stage)
        stage.start()

    async def remove(self, name: str) -> None:
        """Take a toxic out of the chain; what it queued moves on in order."""
        stage = next((s for s in self.stages if s.wrapper.name == name), None)
        if stage is None:
            return
        await stage.interrupt()
        if isinstance(stage.wrapper.toxic, CleanupToxic):
            stage.wrapper.toxic.cleanup(stage.stub)
        # No await from here on: the splice is atomic for the event loop.
        index = self.stages.index(stage)
        for item in stage.queue.drain():
            stage.next.put(item)
        if index == 0:
            self.head = stage.next
        else:
            self.stages[index - 1].next = stage.next
        del self.stages[index]

    async def update(self, wrapper: ToxicWrapper) -> None:
        """Give a toxic new settings: interrupt it and run it again (state is kept)."""
        for stage in self.stages:
            if stage.wrapper.name != wrapper.name:
                continue
            if stage.task is None or stage.task.done():
                stage.wrapper = wrapper
                continue
            await stage.interrupt()
            stage.wrapper = wrapper
            stage.start()

    def cancel_stages(self) -> None:
        for stage in self.stages:
            if stage.task is not None:
                stage.task.cancel()

    # --- backpressure ---

    def account(self, delta: int) -> None:
        self._buffered += delta
        if not self._paused_by_queue and self._buffered > QUEUE_HIGH_WATER:
            self._paused_by_queue = True
            self._update_reading()
        elif self._paused_by_queue and self._buffered < QUEUE_LOW_WATER:
            self._paused_by_queue = False
            self._update_reading()

    def sink_paused(self, paused: bool) -> None:
        self._paused_by_sink = paused
        self._update_reading()

    def _update_reading(self) -> None:
        if self._source.is_closing():
            return
        if self._paused_by_queue or self._paused_by_sink:
            self._source.pause_reading()
        else:
            self._source.resume_reading()


class Connection:
    """A client connection and its upstream connection, joined by two links."""

    def __init__(
        self,
        client: asyncio.Transport,
        on_closed: Callable[[Connection], None],
    ) -> None:
        self.client = client
        self.server: asyncio.Transport | None = None
        self.upstream: Link | None = None
        self.downstream: Link | None = None
        self.closed = False
        self.early: list[bytes | _Marker] = []  # read from the client before join()
        self.early_down: list[bytes | _Marker] = []  # read from the upstream before join()
        self._ended: set[str] = set()
        self._on_closed = on_closed

    def join(
        self,
        server: asyncio.Transport,
        upstream_toxics: Sequence[ToxicWrapper],
        downstream_toxics: Sequence[ToxicWrapper],
    ) -> None:
        """The upstream connection is up: build both links with the proxy's toxics."""
        self.server = server
        for transport in (self.client, server):
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.upstream = Link(self, "upstream", self.client, server)
        self.downstream = Link(self, "downstream", server, self.client)
        for wrapper in upstream_toxics:
            self.upstream.add(wrapper)
        for wrapper in downstream_toxics:
            self.downstream.add(wrapper)
        for link, early in ((self.upstream, self.early), (self.downstream, self.early_down)):
            for item in early:
                if isinstance(item, bytes):
                    link.feed(item)
                else:
                    link.feed_end(item)
            early.clear()

    def link(self, stream: str) -> Link | None:
        """The link of a stream (None until the upstream connection is up)."""
        return self.upstream if stream == "upstream" else self.downstream

    def other(self, link: Link) -> Link:
        other = self.downstream if link is self.upstream else self.upstream
        assert other is not None
        return other

    def link_ended(self, link: Link) -> None:
        """A link passed its source's EOF on: half-close; close when both ended."""
        link.write_eof()
        self._ended.add(link.stream)
        if len(self._ended) == 2:
            self.close()

    def source_lost(self, link: Link | None, exc: Exception | None) -> None:
        """A socket closed under us. A reset or error tears the connection down."""
        if self.closed:
            return
        if link is None or exc is not None:
            self.close()
        else:
            link.feed_end(CLOSE)

    def close(self) -> None:
        """Close both sockets (after what was written to them) and stop every stage."""
        if self.closed:
            return
        self.closed = True
        for transport in (self.client, self.server):
            if transport is not None:
                transport.close()
        self._finish()

    def reset(self) -> None:
        """Abort both sockets with a TCP RST (SO_LINGER 0), dropping unsent data."""
        if self.closed:
            return
        self.closed = True
        for transport in (self.client, self.server):
            if transport is None:
                continue
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        self._finish()

    def _finish(self) -> None:
        for link in (self.upstream, self.downstream):
            if link is not None:
                link.cancel_stages()
        self._on_closed(self)
