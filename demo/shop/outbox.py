"""The gateway's durable outbox of orders the orders service could not take in time.

With ``orders_fallback: queue`` the gateway stores such an order here (SQLite, WAL,
``synchronous=FULL``: a 202 promises the order survives a gateway crash) and answers 202.
:class:`OutboxForwarder` sends queued orders to the orders service, with the same
idempotency key as the original attempt, so an order that the frozen service *did* store
after all is not stored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import Gauge

from inoculate.demo.shop.upstream import UpstreamFailure, UpstreamPool

__all__ = ["Outbox", "OutboxForwarder", "QueuedOrder"]

IDEMPOTENCY_HEADER = "Idempotency-Key"
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueuedOrder:
    """An order waiting in the outbox."""

    idempotency_key: str
    body: bytes


class Outbox:
    """Queued orders in SQLite, keyed (and deduplicated) by idempotency key."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " idempotency_key TEXT NOT NULL UNIQUE, body BLOB NOT NULL, queued_at REAL NOT NULL)"
        )

    def add(self, idempotency_key: str, body: bytes) -> None:
        """Queue an order (a second add of the same key is a no-op)."""
        self._db.execute(
            "INSERT INTO outbox (idempotency_key, body, queued_at) VALUES (?, ?, ?)"
            " ON CONFLICT (idempotency_key) DO NOTHING",
            (idempotency_key, body, time.time()),
        )

    def pending(self, limit: int = 100) -> list[QueuedOrder]:
        """Return the oldest queued orders."""
        rows = self._db.execute(
            "SELECT idempotency_key, body FROM outbox ORDER BY seq LIMIT ?", (limit,)
        )
        return [QueuedOrder(key, bytes(body)) for key, body in rows]

    def remove(self, idempotency_key: str) -> None:
        """Forget a delivered order."""
        self._db.execute("DELETE FROM outbox WHERE idempotency_key = ?", (idempotency_key,))

    def count(self) -> int:
        """Return the number of queued orders."""
        return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        """Close the database."""
        self._db.close()


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
        self._depth.set(self._outbox.count())
        self._wake.set()

    async def run(self) -> None:
        """Forward forever (cancel the task to stop)."""
        while True:
            delivered_all = await self._forward_pending()
            self._depth.set(self._outbox.count())
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
        for order in self._outbox.pending():
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
            self._outbox.remove(order.idempotency_key)
        return True
