"""Figure: how fast the canary's kill switch stops a fault, for each of its levers.

Each trial runs ``inoculate canary`` on the demo's long orders freeze (60 s) under the demo
policy (``experiments/canary``), against the shop scraped by its own Prometheus with users
browsing it. Once the orders process is seen frozen, the bench waits a random 0.2 to 2 s and
pulls a lever; the latency runs from that moment to the freeze's revert in ``faults.jsonl``.
The levers:

- ``file``: the policy's ``STOP`` file is created;
- ``url``: the policy's kill-switch URL (a server in this process) starts answering
  ``{"engaged": true}``;
- ``sigterm`` (the comparison: what an operator does without a kill switch): SIGTERM to the
  canary's process.

The environment form cannot stop a run that has started (a process's environment cannot be
changed from outside it): for it the bench times ``INOCULATE_CANARY_STOP=1`` → the canary's
exit 4, nothing injected. Goal: median and max ≤ 1 s for the file and the URL.

    python bench/kill_switch_latency.py [--trials 20]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
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

GOAL_S = 1.0
CANARY = REPO / "experiments" / "canary"


def _command(root: Path, trial: str, prometheus_url: str, pattern: str) -> list[str]:
    return [
        sys.executable, "-m", "inoculate.cli", "canary", str(CANARY / "orders-freeze-long.yaml"),
        "--policy", str(root / "policy.yaml"),
        "--var", f"prometheus_url={prometheus_url}", "--var", f"orders_pattern={pattern}",
        "--out", str(root / trial), "--ledger", str(root / "ledger.jsonl"),
        "--audit-log", str(root / "audit.jsonl"), "--lock-dir", str(root / "locks"),
        "--no-report",
    ]  # fmt: skip


def one_trial(root: Path, lever: str, number: int, stack: dict) -> float:  # type: ignore[type-arg]
    """Run the canary once, pull ``lever`` mid-fault; return pulled → reverted in seconds."""
    orders = psutil.Process(stack["orders_pid"])
    env = {**os.environ, "INOCULATE_RUNBOOK_FEEDBACK": "off"}
    env.pop("INOCULATE_CANARY_STOP", None)
    trial = f"{lever}-{number}"
    process = subprocess.Popen(
        _command(root, trial, stack["prometheus_url"], stack["pattern"]),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while orders.status() != psutil.STATUS_STOPPED:
        if time.monotonic() > deadline or process.poll() is not None:
            raise SystemExit(f"{trial}: the freeze never began: {process.communicate()[1][-2000:]}")
        time.sleep(0.005)
    time.sleep(random.uniform(0.2, 2.0))
    pulled = time.time()
    if lever == "file":
        (root / "STOP").touch()
    elif lever == "url":
        stack["lever"].engaged = True
    else:
        process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    (root / "STOP").unlink(missing_ok=True)
    stack["lever"].engaged = False
    if process.returncode != 3:
        raise SystemExit(f"{trial}: exit {process.returncode}, not aborted:\n{stderr[-2000:]}")
    [run_dir] = [p for p in (root / trial).iterdir() if p.is_dir()]
    events = [json.loads(line) for line in (run_dir / "faults.jsonl").read_text().splitlines()]
    reverted = max(e["at"] for e in events if e["op"] == "revert")
    if orders.status() == psutil.STATUS_STOPPED:
        raise SystemExit(f"{trial}: orders still frozen after the canary ended")
    return round(reverted - pulled, 3)


def env_trial(root: Path, number: int, stack: dict) -> float:  # type: ignore[type-arg]
    """``INOCULATE_CANARY_STOP=1`` → the canary's exit 4; seconds from start to exit."""
    env = {**os.environ, "INOCULATE_CANARY_STOP": "1", "INOCULATE_RUNBOOK_FEEDBACK": "off"}
    started = time.time()
    done = subprocess.run(
        _command(root, f"env-{number}", stack["prometheus_url"], stack["pattern"]),
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 4 or (root / f"env-{number}").exists():
        raise SystemExit(f"env-{number}: exit {done.returncode}:\n{done.stderr[-2000:]}")
    return round(time.time() - started, 3)


def main() -> int:
    """Run the trials and print the figure per lever against the goal."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="kill-switch-bench-") as tmp,
        kill_switch_lever() as (url, handler),
    ):
        root = Path(tmp)
        policy = yaml.safe_load((CANARY / "policy.yaml").read_text())
        policy["kill_switch"] = {
            "file": str(root / "STOP"),
            "url": url,
            "env": "INOCULATE_CANARY_STOP",
        }
        (root / "policy.yaml").write_text(yaml.safe_dump(policy))
        knobs = ShopKnobs(restart=False, gateway_timeout_s=0.3, gateway_retries=0)
        shop = start_shop(root / "shop", knobs, 30, tie_to_caller=True)
        prometheus = None
        try:
            prometheus = start_prometheus(
                root / "prometheus", {"shop-gateway": [shop.gateway_url.split("://")[1]]}
            )
            orders_pid = shop.state().instance("orders-0").pid
            stack = {
                "prometheus_url": prometheus.url,
                "orders_pid": orders_pid,
                "pattern": re.escape(" ".join(psutil.Process(orders_pid).cmdline())),
                "lever": handler,
            }
            results: dict[str, list[float]] = {"file": [], "url": [], "sigterm": [], "env": []}
            with browsing(shop.gateway_url, users=2):
                time.sleep(10)
                for number in range(args.trials):  # the levers in turn, same minutes
                    for lever in ("file", "url", "sigterm"):
                        results[lever].append(one_trial(root, lever, number, stack))
                    results["env"].append(env_trial(root, number, stack))
                    print(f"trial {number + 1}/{args.trials}: " + ", ".join(
                        f"{k} {v[-1]:.3f} s" for k, v in results.items()), flush=True)  # fmt: skip
        finally:
            if prometheus is not None:
                prometheus.stop()
            shop.stop()
    print(
        f"\nkill switch, lever pulled mid-fault → the freeze reverted ({args.trials} trials each):"
    )
    for lever in ("file", "url", "sigterm"):
        values = results[lever]
        median, worst = statistics.median(values), max(values)
        verdict = "" if lever == "sigterm" else (
            "  goal ≤ 1 s: met" if worst <= GOAL_S else "  goal ≤ 1 s: NOT met")  # fmt: skip
        label = "SIGTERM (comparison)" if lever == "sigterm" else lever
        print(f"  {label:22} median {median:.3f} s, max {worst:.3f} s{verdict}")
    env = results["env"]
    print(f"  {'env (before start)':22} set → exit 4, nothing injected: median "
          f"{statistics.median(env):.3f} s, max {max(env):.3f} s "
          "(it cannot stop a started run)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
