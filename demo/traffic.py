"""Background users for the demos: browse the shop from threads while a block runs, the way
production traffic goes on while a canary runs (the canary itself starts no load)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import requests

__all__ = ["browsing"]


@contextlib.contextmanager
def browsing(
    gateway_url: str, pause_s: float = 0.02, users: int = 1, timeout_s: float = 2.0
) -> Iterator[None]:
    """``users`` threads each GET ``/products`` then wait ``pause_s``, until the block ends
    (each request bounded by ``timeout_s``)."""
    stop = threading.Event()

    def browse() -> None:
        session = requests.Session()
        while not stop.is_set():
            with contextlib.suppress(requests.RequestException):
                session.get(f"{gateway_url}/products", timeout=timeout_s)
            time.sleep(pause_s)
        session.close()

    workers = [threading.Thread(target=browse, daemon=True) for _ in range(users)]
    for worker in workers:
        worker.start()
    try:
        yield
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=timeout_s + 1)
