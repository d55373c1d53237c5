"""``python -m inoculate.demo.shop --state-dir DIR [--knobs-json JSON]``: the shop's supervisor."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import uvloop
from pydantic import ValidationError

from inoculate.demo.shop.knobs import ShopKnobs
from inoculate.demo.shop.processes import die_with_parent
from inoculate.demo.shop.supervisor import run_supervisor


def main(argv: Sequence[str] | None = None) -> int:
    """Run the supervisor in the foreground; exit 0 on SIGTERM/SIGINT, 2 on bad knobs."""
    parser = argparse.ArgumentParser(prog="python -m inoculate.demo.shop", description=__doc__)
    parser.add_argument("--state-dir", type=Path, required=True, help="state.json, logs, stores")
    parser.add_argument("--knobs-json", default="{}", help="ShopKnobs as a JSON object")
    parser.add_argument(
        "--die-with-parent",
        type=int,
        metavar="PID",
        help="exit (SIGKILL, children included) when process PID, our parent, dies",
    )
    args = parser.parse_args(argv)
    if args.die_with_parent:
        die_with_parent(args.die_with_parent)
    try:
        knobs = ShopKnobs.from_json(args.knobs_json)
    except ValidationError as exc:
        print(f"invalid --knobs-json: {exc}", file=sys.stderr)
        return 2
    args.state_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return uvloop.run(run_supervisor(args.state_dir.resolve(), knobs))


if __name__ == "__main__":
    sys.exit(main())
