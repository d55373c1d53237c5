"""The gateway's durable outbox of orders the orders service could not take in time.

With ``orders_fallback: queue`` the gateway stores such an order here (SQLite, WAL,
``synchronous=FULL``: a 202 promises the order survives a gateway crash) and answers 202.
Every database call runs on the outbox's own thread: a commit waits for an fsync, and an
fsync on a busy disk must not stall the gateway's event loop (browsing would time out
while checkout is queueing).
:class:`OutboxForwarder` sends queued orders to the orders service, with the same
idempotency key as the original attempt, so an order that the frozen service *did* store
after all is not stored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from prometheus_client import Gauge

from inoculate.demo.shop.upstream import UpstreamFailure, UpstreamPool

__all__ = ["Outbox", "OutboxForwarder", "QueuedOrder"]

IDEMPOTENCY_HEADER = "Idempotency-Key"
_log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True)
class QueuedOrder:
    """An order waiting in the outbox."""

    idempotency_key: str
    body: bytes


class Outbox:
    """Queued orders in SQLite, keyed (and deduplicated) by idempotency key.

    The connection lives on one worker thread; the async methods hand it their statement.
    """

    def __init__(self, path: Path) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._db: sqlite3.Connection = self._thread.submit(self._open, path).result()

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " idempotency_key TEXT NOT NULL UNIQUE, body BLOB NOT NULL, queued_at REAL NOT NULL)"
        )
        return db

    async def _call(self, work: Callable[[], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    async def add(self, idempotency_key: str, body: bytes) -> None:
        """Queue an order (a second add of the same key is a no-op)."""
        await self._call(
            functools.partial(
                self._db.execute,
                "INSERT INTO outbox (idempotency_key, body, queued_at) VALUES (?, ?, ?)"
                " ON CONFLICT (idempotency_key) DO NOTHING",
                (idempotency_key, body, time.time()),
            )
        )

    async def pending(self, limit: int = 100) -> list[QueuedOrder]:
        """Return the oldest queued orders."""

        def select() -> list[QueuedOrder]:
            rows = self._db.execute(
                "SELECT idempotency_key, body FROM outbox ORDER BY seq LIMIT ?", (limit,)
            )
            return [QueuedOrder(key, bytes(body)) for key, body in rows]

        return await self._call(select)

    async def remove(self, idempotency_key: str) -> None:
        """Forget a delivered order."""
        await self._call(
            functools.partial(
                self._db.execute, "DELETE FROM outbox WHERE idempotency_key = ?", (idempotency_key,)
            )
        )

    async def count(self) -> int:
        """Return the number of queued orders."""
        return await self._call(
            lambda: int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        )

    def close(self) -> None:
        """Close the database (after the statements already handed over)."""
        self._thread.submit(self._db.close).result()
        self._thread.shutdown()


class OutboxForwarder:
    """Background task: forward queued orders to the orders service, oldest first."""

    def __init__(
        self, outbox: Outbox, orders: UpstreamPool, depth: Gauge, interval_s: float = 0.2
    ) -> None:
        self._outbox = outbox
        self._orders = orders
        self._depth = depth
        self._interval_s = interval_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start forwarding in the background (inside the running loop)."""
        self._task = asyncio.get_running_loop().create_task(self.run())

    def stop(self) -> None:
        """Stop forwarding; queued orders stay in the outbox for the next gateway process."""
        if self._task is not None:
            self._task.cancel()

    def wake(self) -> None:
        """Something was queued: try soon."""
        self._depth.inc()
        self._wake.set()

    async def run(self) -> None:
        """Forward forever (cancel the task to stop)."""
        while True:
            delivered_all = await self._forward_pending()
            self._depth.set(await self._outbox.count())
            if delivered_all:
                # Nothing left: sleep until woken; the timeout also drains an outbox
                # left over by a previous gateway process.
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=5.0)
            else:
                await asyncio.sleep(self._interval_s)

    async def _forward_pending(self) -> bool:
        """Try each queued order once; return False at the first that could not be delivered."""
        for order in await self._outbox.pending():
            try:
                response = await self._orders.request(
                    "POST",
                    "/orders",
                    body=order.body,
                    headers={
                        IDEMPOTENCY_HEADER: order.idempotency_key,
                        "Content-Type": "application/json",
                    },
                    idempotent=False,
                )
            except UpstreamFailure:
                return False
            if response.status >= 400:
                # A 4xx will not get better by retrying (the gateway validated the body, so
                # this is a contract change between gateway and orders): drop it, loudly.
                _log.error(
                    "orders refused queued order %s: %s", order.idempotency_key, response.body[:200]
                )
            await self._outbox.remove(order.idempotency_key)
        return True
