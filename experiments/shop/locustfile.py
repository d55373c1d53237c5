"""Load for the demo shop: shoppers who mostly browse and sometimes check out.

A plain locustfile: it runs under ``locust -f experiments/shop/locustfile.py --host URL``
as well as under inoculate (which adds its SLI plugin with ``-f <this>,<plugin>``).

Requests are named so that each endpoint is one series: the SLI endpoint keys are
``"GET /products"``, ``"GET /products/{id}"``, ``"POST /orders"`` and ``"GET /orders/{id}"``.
With the constant wait below, 50 users make roughly 500-1000 requests/s against a shop
that answers in a few milliseconds.
"""

from __future__ import annotations

import random

from locust import FastHttpUser, constant, task

# Product ids the demo shop's catalog is seeded with.
PRODUCT_IDS = range(1, 21)
THINK_TIME_S = 0.06


class Browser(FastHttpUser):
    """Lists the catalog and looks at single products."""

    weight = 4
    wait_time = constant(THINK_TIME_S)

    @task(3)
    def list_products(self) -> None:
        self.client.get("/products")

    @task(2)
    def view_product(self) -> None:
        self.client.get(f"/products/{random.choice(PRODUCT_IDS)}", name="/products/{id}")


class Buyer(FastHttpUser):
    """Orders a product, then looks at the order it got back."""

    weight = 1
    wait_time = constant(THINK_TIME_S)

    @task
    def checkout(self) -> None:
        order = {"product_id": random.choice(PRODUCT_IDS), "quantity": random.randint(1, 3)}
        response = self.client.post("/orders", json=order)
        order_id = _order_id(response)
        if order_id is not None:
            self.client.get(f"/orders/{order_id}", name="/orders/{id}")


def _order_id(response: object) -> object | None:
    # The order is only fetched when the shop said where it is (201 Created or 202 Accepted
    # with an id in the body); anything else was already recorded as the checkout's result.
    if getattr(response, "status_code", 0) not in (201, 202):
        return None
    try:
        body = response.json()  # type: ignore[attr-defined]
    except (ValueError, TypeError):
        return None
    return body.get("id", body.get("order_id")) if isinstance(body, dict) else None
