"""A kill switch's URL for tests and benches: an HTTP server on 127.0.0.1 whose answer the
caller sets (``{"engaged": false}`` until told otherwise)."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
from collections.abc import Iterator

__all__ = ["KillSwitchLever", "kill_switch_lever"]


class KillSwitchLever(http.server.BaseHTTPRequestHandler):
    """Answers GET with ``{"engaged": <engaged>}``, or ``answer`` with ``status`` when set,
    after ``delay_s``. Set the attributes on the class :func:`kill_switch_lever` yields."""

    engaged = False
    status = 200
    answer: bytes | None = None
    delay_s = 0.0

    def do_GET(self) -> None:
        lever = type(self)
        time.sleep(lever.delay_s)
        self.send_response(lever.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        body = lever.answer if lever.answer is not None else {"engaged": lever.engaged}
        self.wfile.write(body if isinstance(body, bytes) else json.dumps(body).encode())

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def kill_switch_lever() -> Iterator[tuple[str, type[KillSwitchLever]]]:
    """Serve a fresh lever; yield its URL and its class (set ``engaged`` on it)."""
    handler = type("Lever", (KillSwitchLever,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/kill-switch", handler
    finally:
        server.shutdown()
        server.server_close()
