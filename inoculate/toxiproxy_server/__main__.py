"""``python -m inoculate.toxiproxy_server --host 127.0.0.1 --port 8474``: a Toxiproxy-API server."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from inoculate.toxiproxy_server._server import ProxyServerError, serve

DEFAULT_PORT = 8474  # Toxiproxy's


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; exit 0, or 2 when the server cannot start."""
    parser = argparse.ArgumentParser(
        prog="python -m inoculate.toxiproxy_server", description=__doc__
    )
    parser.add_argument("--host", default="127.0.0.1", help="API address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="API port; 0 = any free")
    parser.add_argument("--config", type=Path, help="JSON array of proxies to create at start")
    parser.add_argument("--ready-file", type=Path, help="write {api_url, pid} here once up")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    try:
        import uvloop  # a faster event loop: the proxy's per-chunk overhead is the loop's
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(serve(args.host, args.port, args.config, args.ready_file))
    except ProxyServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
