"""The orders service's own store: one SQLite file in WAL mode, idempotent on a client key."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

__all__ = ["Order", "OrderRequest", "OrderStore", "describe_errors"]


class OrderRequest(BaseModel):
    """The body of ``POST /orders`` (checked by the gateway before queueing, and by orders)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    product_id: StrictInt = Field(ge=1, description="Catalog id of the product.")
    quantity: StrictInt = Field(ge=1, le=1000, description="How many items.")


def describe_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Validation errors as {field, message} pairs a client can show."""
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
        for e in exc.errors()
    ]


@dataclass(frozen=True)
class Order:
    """A stored order."""

    id: int
    product_id: int
    quantity: int
    idempotency_key: str | None
    created_at: float

    def to_json(self) -> dict[str, object]:
        """Return the order as a JSON-ready dict."""
        return asdict(self)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id INTEGER NOT NULL,
    quantity INTEGER NOT NULL,
    idempotency_key TEXT UNIQUE,
    created_at REAL NOT NULL
)
"""
_COLUMNS = "id, product_id, quantity, idempotency_key, created_at"


class OrderStore:
    """Orders in SQLite. Idempotency keys are unique, so a replayed order is never stored twice."""

    def __init__(self, path: Path) -> None:
        # Autocommit: each INSERT is its own transaction, durable when it returns.
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def add(self, request: OrderRequest, idempotency_key: str | None) -> tuple[Order, bool]:
        """Store an order; return it and whether it is new (False: the key was seen before)."""
        cursor = self._db.execute(
            "INSERT INTO orders (product_id, quantity, idempotency_key, created_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING",
            (request.product_id, request.quantity, idempotency_key, time.time()),
        )
        if cursor.rowcount == 1:
            order = self.get(int(cursor.lastrowid or 0))
            assert order is not None  # just inserted in autocommit mode
            return order, True
        existing = self.by_key(idempotency_key or "")
        assert existing is not None  # the conflict means a row with this key exists
        return existing, False

    def get(self, order_id: int) -> Order | None:
        """Return the order with this id, if any."""
        row = self._db.execute(f"SELECT {_COLUMNS} FROM orders WHERE id = ?", (order_id,))
        found = row.fetchone()
        return Order(*found) if found else None

    def by_key(self, idempotency_key: str) -> Order | None:
        """Return the order stored under this idempotency key, if any."""
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM orders WHERE idempotency_key = ?", (idempotency_key,)
        )
        found = row.fetchone()
        return Order(*found) if found else None

    def count(self) -> int:
        """Return the number of stored orders."""
        return int(self._db.execute("SELECT COUNT(*) FROM orders").fetchone()[0])

    def close(self) -> None:
        """Close the database."""
        self._db.close()
