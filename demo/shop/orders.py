"""The orders service: stores orders in its own SQLite file (WAL mode).

``python -m inoculate.demo.shop.orders --port P --instance orders-0 --state-dir DIR``.
Routes: ``POST /orders`` (201 with the order; 200 with the existing one when the
``Idempotency-Key`` header was seen before), ``GET /orders/{id}``,
``GET /orders?idempotency_key=K`` (a list, for checks of exactly-once delivery).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aiohttp import web
from pydantic import ValidationError

from inoculate.demo.shop.orders_store import OrderRequest, OrderStore, describe_errors
from inoculate.demo.shop.service import json_response, new_app, run_service, service_parser

__all__ = ["DB_FILE_NAME", "IDEMPOTENCY_HEADER", "build_app", "main"]

DB_FILE_NAME = "orders.sqlite3"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def build_app(instance: str, store: OrderStore) -> web.Application:
    """Return the orders app backed by ``store``."""
    app, _ = new_app("orders", instance)

    async def create_order(request: web.Request) -> web.Response:
        try:
            order_request = OrderRequest.model_validate_json(await request.read())
        except ValidationError as exc:
            return json_response({"error": "invalid order", "details": describe_errors(exc)}, 400)
        order, created = store.add(order_request, request.headers.get(IDEMPOTENCY_HEADER))
        return json_response(order.to_json(), status=201 if created else 200)

    async def get_order(request: web.Request) -> web.Response:
        raw_id = request.match_info["id"]
        order = store.get(int(raw_id)) if raw_id.isdigit() else None
        if order is None:
            return json_response({"error": "no such order"}, status=404)
        return json_response(order.to_json())

    async def find_orders(request: web.Request) -> web.Response:
        key = request.query.get("idempotency_key")
        if key is None:
            return json_response({"error": "query parameter idempotency_key is required"}, 400)
        order = store.by_key(key)
        return json_response([order.to_json()] if order else [])

    app.router.add_post("/orders", create_order)
    app.router.add_get("/orders", find_orders)
    app.router.add_get("/orders/{id}", get_order)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Run the orders service."""
    parser = service_parser("The shop's orders service.")
    parser.add_argument("--state-dir", type=Path, required=True, help="where orders.sqlite3 lives")
    args = parser.parse_args(argv)
    store = OrderStore(args.state_dir / DB_FILE_NAME)
    try:
        run_service(lambda: build_app(args.instance, store), args.port, args.parent_pid)
    finally:
        store.close()


if __name__ == "__main__":
    main()
