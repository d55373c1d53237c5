"""``python -m inoculate.demo.shop_docker.reaper --docker-host H SHOP_ID``: remove a Docker
shop once the process that started it is gone.

It blocks reading its stdin, a pipe whose only writer is the runner; the read returns at
end-of-file — the runner closed the pipe (normal stop) or died (even by SIGKILL: the kernel
closes a dead process's files). Then it removes every container and network labelled with
the shop's id. Docker would otherwise keep a SIGKILLed run's containers running forever.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from inoculate.demo.shop_docker.system import remove_shop


def main(argv: Sequence[str] | None = None) -> int:
    """Wait for end-of-file on stdin, then remove the shop."""
    parser = argparse.ArgumentParser(
        prog="python -m inoculate.demo.shop_docker.reaper", description=__doc__
    )
    parser.add_argument("shop_id")
    parser.add_argument("--docker-host", required=True)
    args = parser.parse_args(argv)
    while sys.stdin.buffer.read(65536):
        pass
    removed = remove_shop(args.docker_host, args.shop_id)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    print(f"{stamp} reaper: shop {args.shop_id}: removed {removed or 'nothing'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
