"""The shop's catalog proxy: ``inoculate.toxiproxy_server`` (a Toxiproxy-API server) as a
shop service.

``python -m inoculate.demo.shop.netproxy --port P --instance netproxy-0 --config netproxy.json``
(the supervisor runs it when the ``catalog_proxy`` knob is on). The proxies come from the
config file; faults then reach them through the API on port P (``toxiproxy_url``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import uvloop

from inoculate.demo.shop.processes import die_with_parent
from inoculate.demo.shop.service import LOOPBACK, service_parser


def main(argv: Sequence[str] | None = None) -> None:
    """Run the proxy server until SIGTERM/SIGINT."""
    parser = service_parser("The shop's catalog proxy (Toxiproxy API).")
    parser.add_argument("--config", type=Path, required=True, help="proxies, /populate format")
    args = parser.parse_args(argv)
    if args.parent_pid is not None:
        die_with_parent(args.parent_pid)
    from inoculate.toxiproxy_server import serve  # the framework's proxy, only when the knob is on

    uvloop.run(serve(LOOPBACK, args.port, config=args.config))


if __name__ == "__main__":
    main()
