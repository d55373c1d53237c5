"""What a toxic is, what it sees of a connection, and how toxic types are found by name.

A toxic type is a small frozen pydantic model: its fields are the toxic's ``attributes``
(decoded from the API), and its one method, :meth:`Toxic.pipe`, moves the chunks of one
direction of one connection from ``stub.read()`` to ``stub.write()``, transforming them on
the way. A toxic holds only its settings; what it needs per connection lives on the
:class:`ToxicStub` (``stub.state``, made by the optional :class:`StatefulToxic` ability),
so one configured toxic serves every connection. Other optional abilities are separate
small protocols that generic code checks for: :class:`SharedStateToxic` (one state for all
connections of a proxy) and :class:`CleanupToxic` (undo on removal from a live link).

``toxicity`` is applied in exactly one place, ``Stage._run`` in ``_link.py``: with
probability ``1 - toxicity`` the stage runs :class:`NoopToxic` instead.

A toxic that is interrupted (removed or updated while a connection is open) is cancelled
inside ``pipe``; it must not drop data it holds, so toxics write held chunks in ``finally``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

__all__ = [
    "STREAMS",
    "Chunk",
    "CleanupToxic",
    "NoopToxic",
    "SharedStateToxic",
    "StatefulToxic",
    "Toxic",
    "ToxicStub",
    "ToxicWrapper",
    "registry",
]

STREAMS = ("upstream", "downstream")


@dataclass(slots=True)
class Chunk:
    """Bytes read from one side, and the loop time they were read (latency moves it on)."""

    data: bytes
    at: float


class Toxic(BaseModel):
    """Base of toxic types: settings as fields, behaviour in :meth:`pipe`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    #: The name the API uses (``"type": "latency"``).
    type_name: ClassVar[str] = ""
    #: The stream a toxic goes on when the API request names none (Toxiproxy: downstream).
    default_stream: ClassVar[str] = "downstream"
    #: The streams this toxic type can act on.
    streams: ClassVar[tuple[str, ...]] = STREAMS

    async def pipe(self, stub: ToxicStub) -> None:
        """Move chunks from ``stub.read()`` to ``stub.write()``; return at end of input."""
        raise NotImplementedError

    def attributes(self) -> dict[str, Any]:
        """The ``attributes`` object of the API."""
        return self.model_dump(mode="json")


class NoopToxic(Toxic):
    """Passes everything through: what a stage runs when toxicity says "not this one"."""

    type_name: ClassVar[str] = "noop"

    async def pipe(self, stub: ToxicStub) -> None:
        while (chunk := await stub.read()) is not None:
            stub.write(chunk)


@runtime_checkable
class StatefulToxic(Protocol):
    """A toxic that keeps state per connection (kept across interruptions of its stage)."""

    def new_state(self) -> Any:
        """Return a fresh per-connection state object."""
        ...


@runtime_checkable
class SharedStateToxic(Protocol):
    """A toxic whose state is shared by every connection of its proxy (made once when added)."""

    def new_shared_state(self) -> Any:
        """Return the state shared by all connections."""
        ...


@runtime_checkable
class CleanupToxic(Protocol):
    """A toxic that must undo something when it is removed from a live connection."""

    def cleanup(self, stub: ToxicStub) -> None:
        """Called after the toxic was interrupted for good (removed)."""
        ...


class StageView(Protocol):
    """What a stub needs of the stage it fronts (``_link.Stage`` is one): this module never
    imports the link machinery, which imports it."""

    state: Any
    wrapper: ToxicWrapper

    async def next_input(self) -> Chunk | None: ...

    def emit(self, chunk: Chunk) -> None: ...

    def close_connection(self) -> None: ...

    def reset_connection(self) -> None: ...

    def send_back(self, data: bytes) -> None: ...


class ToxicStub:
    """What a toxic sees of one direction of one connection."""

    __slots__ = ("_stage",)

    def __init__(self, stage: StageView) -> None:
        self._stage = stage

    @property
    def state(self) -> Any:
        """The per-connection state (``StatefulToxic.new_state``), or None."""
        return self._stage.state

    @property
    def shared(self) -> Any:
        """The state shared by every connection (``SharedStateToxic``), or None."""
        return self._stage.wrapper.shared

    @property
    def toxic_name(self) -> str:
        """The name this toxic was added under."""
        return self._stage.wrapper.name

    async def read(self) -> Chunk | None:
        """The next chunk, or None when the input ended (the framework passes the end on)."""
        return await self._stage.next_input()

    def write(self, chunk: Chunk) -> None:
        """Pass a chunk on to the next toxic (or to the socket)."""
        self._stage.emit(chunk)

    def close(self) -> None:
        """End the connection: what was written so far is delivered, then both sides close."""
        self._stage.close_connection()

    def reset(self) -> None:
        """Abort the connection now with a TCP RST on both sides (SO_LINGER 0)."""
        self._stage.reset_connection()

    def send_back(self, data: bytes) -> None:
        """Send bytes the other way (to the side this stream reads from), e.g. a reply."""
        self._stage.send_back(data)

    @staticmethod
    def now() -> float:
        """The event loop's clock (the clock of ``Chunk.at``)."""
        return asyncio.get_running_loop().time()

    @staticmethod
    async def sleep_until(when: float) -> None:
        """Sleep until the loop time ``when`` (no-op if it has passed)."""
        delay = when - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass
class ToxicWrapper:
    """A toxic added to a proxy: the envelope of the API around the toxic's settings."""

    name: str
    stream: str
    toxicity: float
    toxic: Toxic
    shared: Any = None

    @property
    def type(self) -> str:
        """The toxic's type name."""
        return self.toxic.type_name

    def to_json(self) -> dict[str, Any]:
        """The toxic as the API shows it (field order as Toxiproxy's)."""
        return {
            "attributes": self.toxic.attributes(),
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
        }


def registry(types: Iterable[type[Toxic]]) -> Mapping[str, type[Toxic]]:
    """A read-only name → toxic type mapping; names must be unique."""
    found: dict[str, type[Toxic]] = {}
    for toxic_type in types:
        if not toxic_type.type_name or toxic_type.type_name in found:
            raise ValueError(f"toxic type {toxic_type.__name__} needs a unique type_name")
        found[toxic_type.type_name] = toxic_type
    return MappingProxyType(found)
