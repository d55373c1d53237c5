"""How fast a network fault takes effect: from the action call to the first delayed packet.

A pinger thread sends small messages back to back over one open connection through our
proxy to an echo server and records when each left and how long it took. Each trial
calls ``inoculate.extensions.toxiproxy.add_latency`` (the Chaos Toolkit action, with its fsynced
ledger record) for a 50 ms latency toxic; the *injection latency* is the time from the
call to the send time of the first message that came back delayed, i.e. after which the
open connection is affected. Then ``remove_toxic`` and the next trial.

Printed with its comparison, medians of the trials: the action's own duration (call to
return: ledger record + API call) and a bare API call (``POST /toxics`` alone), which
shows what the ledger costs and that the effect is there by the time the action returns.
Run from the repository root: ``.venv/bin/python bench/toxic_injection_latency.py``.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
LATENCY_MS = 50


class _Echo:
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)


class _Pinger:
    """Back-to-back round trips on one connection: (sent_at, rtt) per message."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            sent = time.perf_counter()
            self.sock.sendall(b"p")
            self.sock.recv(16)
            self.samples.append((sent, time.perf_counter() - sent))

    def first_delayed_after(self, start: float, threshold_s: float, timeout_s: float) -> float:
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            for sent, rtt in list(self.samples):
                if rtt >= threshold_s and sent >= start - threshold_s:
                    return sent
            time.sleep(0.005)
        raise RuntimeError("no delayed message seen: the toxic did not take effect")


def main() -> int:
    """Run the trials and print the figure with its comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="trials (1..200)")
    args = parser.parse_args()
    if not 1 <= args.trials <= 200:
        parser.error("--trials must be 1..200")
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from inoculate.extensions import toxiproxy as network
    from inoculate.toxiproxy_server import start_server_process

    echo = _Echo()
    effect, action, bare = [], [], []
    with start_server_process() as server, tempfile.TemporaryDirectory() as scratch:
        api = server.api_url
        config = {"toxiproxy_url": api, "inoculate_ledger": f"{scratch}/ledger.jsonl"}
        answer = requests.post(f"{api}/proxies", timeout=5, json={
            "name": "bench", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{echo.port}",
        })  # fmt: skip
        host, port = answer.json()["listen"].rsplit(":", 1)
        pinger = _Pinger((host, int(port)))
        threshold = LATENCY_MS / 1000 * 0.9
        try:
            for _ in range(args.trials):
                pinger.samples.clear()
                time.sleep(0.02)
                called = time.perf_counter()
                network.add_latency("bench", latency_ms=LATENCY_MS, configuration=config)
                action.append(time.perf_counter() - called)
                effect.append(pinger.first_delayed_after(called, threshold, 2.0) - called)
                network.remove_toxic("bench", "latency_downstream", configuration=config)
                started = time.perf_counter()
                requests.post(f"{api}/proxies/bench/toxics", timeout=5,
                              json={"type": "latency", "attributes": {"latency": 1}})  # fmt: skip
                bare.append(time.perf_counter() - started)
                requests.delete(f"{api}/proxies/bench/toxics/latency_downstream", timeout=5)
        finally:
            pinger.stop.set()
            pinger.thread.join(timeout=2)
            pinger.sock.close()

    def ms(values: list[float]) -> str:
        return (
            f"median {statistics.median(values) * 1000:7.2f} ms   max {max(values) * 1000:7.2f} ms"
        )

    print(f"latency toxic ({LATENCY_MS} ms) on an open connection, {args.trials} trials, "
          "127.0.0.1, a 2-core machine shared with other work")  # fmt: skip
    print(f"action call -> first delayed message sent (figure)  {ms(effect)}")
    print(f"action call -> action returned (ledger + API)      {ms(action)}")
    print(f"bare POST /toxics, no ledger (comparison)           {ms(bare)}")
    before_return = sum(e <= a for e, a in zip(effect, action, strict=True))
    print(f"the effect was in place before the action returned in {before_return}/{args.trials} "
          "trials")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
