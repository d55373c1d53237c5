"""``python3 -m inoculate.demo.shop_docker.serve SERVICE --instance NAME [...]``: one shop
service as the main process of a container.

The services are the process flavour's own apps (``inoculate.demo.shop.catalog``, ``orders``,
``gateway``); only the serving differs. Those bind 127.0.0.1 because the supervisor's
children share the host's network; in a container the service must listen on the
container's interface so that its peers on the Docker network reach it, hence this small
runner instead of ``inoculate.demo.shop.service.run_service``. SIGTERM (``docker stop``) stops it
cleanly; a SIGKILL is a crash that Docker's restart policy answers.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from inoculate.demo.shop.service import AppFactory, run_service

__all__ = ["PORT", "main"]

PORT = 8080
BIND_ALL = "0.0.0.0"  # inside the container's own network namespace
STATE_DIR = Path("/var/lib/shop")


def _catalog(args: argparse.Namespace) -> AppFactory:
    from inoculate.demo.shop import catalog

    return lambda: catalog.build_app(args.instance)


def _orders(args: argparse.Namespace) -> AppFactory:
    from inoculate.demo.shop import orders
    from inoculate.demo.shop.orders_store import OrderStore

    store = OrderStore(args.state_dir / orders.DB_FILE_NAME)
    return lambda: orders.build_app(args.instance, store)


def _gateway(args: argparse.Namespace) -> AppFactory:
    from inoculate.demo.shop import gateway
    from inoculate.demo.shop.knobs import ShopKnobs

    config = gateway.GatewayConfig(
        args.instance,
        tuple(args.catalog_url),
        args.orders_url,
        ShopKnobs.from_json(args.knobs_json),
        args.state_dir,
    )
    return lambda: gateway.build_app(config)


SERVICES: Mapping[str, Callable[[argparse.Namespace], AppFactory]] = {
    "catalog": _catalog,
    "orders": _orders,
    "gateway": _gateway,
}
# A proxy with no upstream timeout waits exactly as long as its client (as in run_service).
CANCEL_ON_DISCONNECT = {"gateway"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m inoculate.demo.shop_docker.serve", description=__doc__
    )
    parser.add_argument("service", choices=sorted(SERVICES))
    parser.add_argument("--instance", required=True, help="instance name, e.g. catalog-0")
    parser.add_argument("--port", type=int, default=PORT)
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR, help="orders db, outbox")
    parser.add_argument("--catalog-url", action="append", default=[], help="gateway; repeatable")
    parser.add_argument("--orders-url", default="", help="gateway only")
    parser.add_argument("--knobs-json", default="{}", help="gateway only: ShopKnobs as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve one shop service on 0.0.0.0:``--port`` until SIGTERM or SIGINT."""
    args = _parser().parse_args(argv)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    factory = SERVICES[args.service](args)
    cancel = args.service in CANCEL_ON_DISCONNECT
    run_service(factory, args.port, None, cancel_on_disconnect=cancel, host=BIND_ALL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
