"""Figure: what the canary's guards cost the runner, in CPU.

The same experiment — the demo's orders freeze held for 20 s (``experiments/canary``),
against the shop scraped by its own Prometheus with users browsing it — runs in turn:

- **guards on**: ``inoculate canary`` under the demo policy with a kill switch file *and*
  URL (a server in this process answering ``{"engaged": false}``): the window, kill switch,
  error-budget and lock checks before the run, the burn-rate guard (2 windows, every
  second), both kill-switch watchers and the deadline during it, and the audit log;
- **guards off** (the comparison): ``inoculate run`` of the same experiment, whose SLO is
  still read from Prometheus every second.

The runner's CPU (user + system, ``getrusage`` of the finished child) is printed per run and
per second of run, with the difference. Runs alternate so both see the same machine.

    python bench/guard_overhead.py [--trials 5]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from inoculate.demo.prometheus import start_prometheus  # noqa: E402
from inoculate.demo.shop.client import start_shop  # noqa: E402
from inoculate.demo.shop.knobs import ShopKnobs  # noqa: E402
from inoculate.demo.traffic import browsing  # noqa: E402
from tests.canary_support import kill_switch_lever  # noqa: E402

CANARY = REPO / "experiments" / "canary"
FREEZE_S = 20


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_run(command: list[str], name: str) -> tuple[float, float]:
    """Run ``command`` to its end; return (its CPU seconds, its wall seconds)."""
    env = {**os.environ, "INOCULATE_RUNBOOK_FEEDBACK": "off"}
    before, started = _child_cpu(), time.monotonic()
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=300, check=False
    )
    wall, cpu = time.monotonic() - started, _child_cpu() - before
    if done.returncode != 0:
        raise SystemExit(f"{name}: exit {done.returncode}:\n{done.stderr[-2000:]}")
    return cpu, wall


def main() -> int:
    """Alternate guarded and unguarded runs; print CPU per run and per second of run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="guard-overhead-") as tmp,
        kill_switch_lever() as (url, _),
    ):
        root = Path(tmp)
        experiment = yaml.safe_load((CANARY / "orders-freeze-brief.yaml").read_text())
        experiment["method"][0]["provider"]["arguments"]["duration_s"] = FREEZE_S
        (root / "experiment.yaml").write_text(yaml.safe_dump(experiment))
        policy = yaml.safe_load((CANARY / "policy.yaml").read_text())
        policy["kill_switch"] = {
            "file": str(root / "STOP"),
            "url": url,
        }
        (root / "policy.yaml").write_text(yaml.safe_dump(policy))
        knobs = ShopKnobs(restart=False, gateway_timeout_s=0.3, gateway_retries=0)
        shop = start_shop(root / "shop", knobs, 30, tie_to_caller=True)
        prometheus = None
        on: list[tuple[float, float]] = []
        off: list[tuple[float, float]] = []
        try:
            prometheus = start_prometheus(
                root / "prometheus", {"shop-gateway": [shop.gateway_url.split("://")[1]]}
            )
            pid = shop.state().instance("orders-0").pid
            variables = [
                "--var", f"prometheus_url={prometheus.url}",
                "--var", f"orders_pattern={re.escape(' '.join(psutil.Process(pid).cmdline()))}",
                "--ledger", str(root / "ledger.jsonl"), "--no-report",
            ]  # fmt: skip
            base = [sys.executable, "-m", "inoculate.cli"]
            with browsing(shop.gateway_url, users=2):
                time.sleep(10)
                for number in range(args.trials):
                    guarded = [*base, "canary", str(root / "experiment.yaml"),
                               "--policy", str(root / "policy.yaml"), *variables,
                               "--out", str(root / f"on-{number}"),
                               "--audit-log", str(root / "audit.jsonl"),
                               "--lock-dir", str(root / "locks")]  # fmt: skip
                    plain = [*base, "run", str(root / "experiment.yaml"), *variables,
                             "--out", str(root / f"off-{number}")]  # fmt: skip
                    on.append(one_run(guarded, f"guards on #{number}"))
                    off.append(one_run(plain, f"guards off #{number}"))
                    print(f"trial {number + 1}/{args.trials}: on {on[-1][0]:.2f} s CPU in "
                          f"{on[-1][1]:.1f} s, off {off[-1][0]:.2f} s CPU in {off[-1][1]:.1f} s",
                          flush=True)  # fmt: skip
        finally:
            if prometheus is not None:
                prometheus.stop()
            shop.stop()
    print(json.dumps({"on": on, "off": off}))
    cpu_on, cpu_off = (statistics.median(c for c, _ in runs) for runs in (on, off))
    rate_on, rate_off = (statistics.median(c / w for c, w in runs) for runs in (on, off))
    print(f"\nrunner CPU over {args.trials} alternating runs of a {FREEZE_S} s freeze:")
    print(f"  guards on  (inoculate canary): median {cpu_on:.2f} s per run, "
          f"{rate_on * 1000:.1f} ms per second of run")  # fmt: skip
    print(f"  guards off (inoculate run):    median {cpu_off:.2f} s per run, "
          f"{rate_off * 1000:.1f} ms per second of run")  # fmt: skip
    print(f"  the guards add {cpu_on - cpu_off:+.2f} s per run "
          f"({(rate_on - rate_off) * 1000:+.1f} ms per second of run, "
          f"{cpu_on / cpu_off:.2f}x)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
