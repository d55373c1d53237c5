"""The catalog service: a fixed list of products, answered from precomputed bytes.

``python -m inoculate.demo.shop.catalog --port P --instance catalog-0`` (the supervisor runs it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from aiohttp import web

from inoculate.demo.shop.service import json_response, new_app, run_service, service_parser

__all__ = ["PRODUCTS", "build_app", "main"]

PRODUCTS: tuple[dict[str, object], ...] = tuple(
    {"id": i, "name": f"Product {i}", "price_cents": 199 + 100 * i, "stock": 10 * i}
    for i in range(1, 21)
)


def build_app(instance: str) -> web.Application:
    """Return the catalog app of one instance."""
    app, _ = new_app("catalog", instance)
    # Serialised once: the list is the hot path of every load test.
    listing = json.dumps(PRODUCTS, separators=(",", ":")).encode()
    by_id = {str(p["id"]): json.dumps(p, separators=(",", ":")).encode() for p in PRODUCTS}
    instance_header = {"X-Instance": instance}

    async def list_products(request: web.Request) -> web.Response:
        return web.Response(body=listing, content_type="application/json", headers=instance_header)

    async def get_product(request: web.Request) -> web.Response:
        body = by_id.get(request.match_info["id"])
        if body is None:
            return json_response({"error": "no such product"}, status=404)
        return web.Response(body=body, content_type="application/json", headers=instance_header)

    app.router.add_get("/products", list_products)
    app.router.add_get("/products/{id}", get_product)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Run one catalog instance."""
    args = service_parser("The shop's catalog service.").parse_args(argv)
    run_service(lambda: build_app(args.instance), args.port, args.parent_pid)


if __name__ == "__main__":
    main()
