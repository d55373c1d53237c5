"""Toxiproxy's TCP toxics: same names, attributes, units and stream semantics.

- ``latency`` (``latency``, ``jitter``: ms): each chunk is delayed by latency ± jitter
  from the time it was read;
- ``bandwidth`` (``rate``: KB/s, 1 KB = 1000 bytes): data passes at most at that rate;
- ``slow_close`` (``delay``: ms): the end of the stream is passed on only after the delay;
- ``timeout`` (``timeout``: ms): data is dropped; the connection closes after the timeout
  (0: never);
- ``reset_peer`` (``timeout``: ms): on the first data, wait the timeout, then reset both
  sides (TCP RST);
- ``slicer`` (``average_size``, ``size_variation``: bytes, ``delay``: µs): chunks are cut
  into small pieces;
- ``limit_data`` (``bytes``): the connection closes once that many bytes went through.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field, model_validator

from inoculate.toxiproxy_server._toxic import Chunk, Toxic, ToxicStub

__all__ = [
    "BandwidthToxic",
    "LatencyToxic",
    "LimitDataToxic",
    "ResetPeerToxic",
    "SlicerToxic",
    "SlowCloseToxic",
    "TimeoutToxic",
]


class LatencyToxic(Toxic):
    """Delay every chunk by ``latency`` ± ``jitter`` milliseconds from the time it was read."""

    type_name: ClassVar[str] = "latency"
    latency: int = Field(0, ge=0, description="milliseconds")
    jitter: int = Field(0, ge=0, description="milliseconds (uniform ± around latency)")

    def delay_s(self) -> float:
        """One draw of the delay, in seconds."""
        jitter = random.uniform(-self.jitter, self.jitter) if self.jitter else 0.0
        return max(0.0, self.latency + jitter) / 1000.0

    async def pipe(self, stub: ToxicStub) -> None:
        while (chunk := await stub.read()) is not None:
            release = chunk.at + self.delay_s()
            try:
                await stub.sleep_until(release)
            finally:  # also when interrupted: never drop data
                # Later latency toxics count from here, so chained latencies add up.
                chunk.at = max(chunk.at, release)
                stub.write(chunk)


class BandwidthToxic(Toxic):
    """Pass data at most at ``rate`` KB/s, in pieces of at most 100 ms worth."""

    type_name: ClassVar[str] = "bandwidth"
    rate: int = Field(0, ge=0, description="KB/s (1 KB = 1000 bytes); 0 = unlimited")

    async def pipe(self, stub: ToxicStub) -> None:
        bytes_per_s = self.rate * 1000
        piece = max(1, self.rate * 100)
        next_at = stub.now()
        while (chunk := await stub.read()) is not None:
            if bytes_per_s == 0:
                stub.write(chunk)
                continue
            view = memoryview(chunk.data)
            while view:
                part = view[:piece]
                next_at = max(next_at, stub.now()) + len(part) / bytes_per_s
                try:
                    await stub.sleep_until(next_at)
                except asyncio.CancelledError:
                    stub.write(Chunk(bytes(view), chunk.at))  # interrupted: pass the rest on
                    raise
                stub.write(Chunk(bytes(part), chunk.at))
                view = view[piece:]


class SlowCloseToxic(Toxic):
    """Pass data; delay the end of the stream (the socket's close) by ``delay`` ms."""

    type_name: ClassVar[str] = "slow_close"
    delay: int = Field(0, ge=0, description="milliseconds")

    async def pipe(self, stub: ToxicStub) -> None:
        while (chunk := await stub.read()) is not None:
            stub.write(chunk)
        await asyncio.sleep(self.delay / 1000.0)


class TimeoutToxic(Toxic):
    """Drop all data; close the connection ``timeout`` ms after the toxic took effect.

    Toxiproxy restarts its timer on every chunk it drops; the documented behaviour ("closes
    the connection after timeout") is what this implements. With ``timeout`` 0 the
    connection stays open, data is dropped until the toxic is removed, and removing it closes
    the connection (the stream lost data, so it cannot go on).
    """

    type_name: ClassVar[str] = "timeout"
    timeout: int = Field(0, ge=0, description="milliseconds; 0 = never close")

    async def pipe(self, stub: ToxicStub) -> None:
        if self.timeout == 0:
            while await stub.read() is not None:
                pass  # dropped
            return
        try:
            async with asyncio.timeout(self.timeout / 1000.0):
                while await stub.read() is not None:
                    pass  # dropped
                return
        except TimeoutError:
            stub.close()

    def cleanup(self, stub: ToxicStub) -> None:
        """Removed from a live connection that lost data: close it."""
        stub.close()


class ResetPeerToxic(Toxic):
    """On the first data (or end) of the stream, wait ``timeout`` ms, then reset (TCP RST)."""

    type_name: ClassVar[str] = "reset_peer"
    timeout: int = Field(0, ge=0, description="milliseconds")

    async def pipe(self, stub: ToxicStub) -> None:
        await stub.read()  # the first chunk is dropped, as Toxiproxy does
        await asyncio.sleep(self.timeout / 1000.0)
        stub.reset()


class SlicerToxic(Toxic):
    """Cut chunks into pieces of about ``average_size`` bytes, ``delay`` µs apart."""

    type_name: ClassVar[str] = "slicer"
    average_size: int = Field(1, ge=1, description="bytes")
    size_variation: int = Field(0, ge=0, description="bytes, smaller than average_size")
    delay: int = Field(0, ge=0, description="microseconds between pieces")

    @model_validator(mode="after")
    def _variation_below_average(self) -> SlicerToxic:
        if self.size_variation >= self.average_size:
            raise ValueError("size_variation must be smaller than average_size")
        return self

    def cuts(self, start: int, end: int) -> list[int]:
        """Offsets ``[s0, e0, s1, e1, ...]`` of the pieces of ``data[start:end]``."""
        if (end - start) - self.average_size <= self.size_variation:
            return [start, end]
        variation = self.size_variation
        mid = start + (end - start) // 2
        if variation:
            mid += random.randrange(-variation, variation)
        return self.cuts(start, mid) + self.cuts(mid, end)

    async def pipe(self, stub: ToxicStub) -> None:
        while (chunk := await stub.read()) is not None:
            offsets = self.cuts(0, len(chunk.data))
            for index in range(0, len(offsets), 2):
                begin, end = offsets[index], offsets[index + 1]
                stub.write(Chunk(chunk.data[begin:end], chunk.at))
                try:
                    await asyncio.sleep(self.delay / 1_000_000)
                except asyncio.CancelledError:
                    if end < len(chunk.data):
                        stub.write(Chunk(chunk.data[end:], chunk.at))
                    raise


@dataclass
class _Transmitted:
    count: int = 0


class LimitDataToxic(Toxic):
    """Close the connection once ``bytes`` bytes went through this stream."""

    type_name: ClassVar[str] = "limit_data"
    bytes: int = Field(0, ge=0, description="bytes to let through before closing")

    def new_state(self) -> _Transmitted:
        """Bytes passed on this connection so far (kept while the toxic is updated)."""
        return _Transmitted()

    async def pipe(self, stub: ToxicStub) -> None:
        state: _Transmitted = stub.state
        while (chunk := await stub.read()) is not None:
            allowed = max(0, self.bytes - state.count)
            if len(chunk.data) > allowed:
                chunk = Chunk(chunk.data[:allowed], chunk.at)
            if chunk.data:
                stub.write(chunk)
                state.count += len(chunk.data)
            if state.count >= self.bytes:
                stub.close()
                return
