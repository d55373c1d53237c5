"""Figure: abort latency of the burn-rate guard, from the breach being observable to the last
fault reverted.

Each trial runs, through ``inoculate run``, a 40 s freeze of the catalog behind a gateway that
answers 504 after 0.3 s (``tests.prometheus_support``), guarded by a burn-rate guard at
10 s / 2 s / 5x. The breach is observable at the end of the first second whose check trips
(``guards.jsonl``: second ``t``, so at ``t + 1``); the latency runs from there to the freeze's
revert in ``faults.jsonl``. Also printed: injection to revert. Goal: median and max <= 1 s.

    python bench/guard_abort_latency.py [--trials 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.prometheus_support import (  # noqa: E402
    catalog_pattern,
    frozen_catalog_experiment,
    run_once,
    scraped_shop,
)

GOAL_S = 1.0
GUARD = {"burn_rate": {"long_window_s": 10, "short_window_s": 2, "threshold": 5}}


def one_trial(root: Path, stack, number: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Run the guarded experiment once; return (abort latency, injection to revert)."""
    experiment = frozen_catalog_experiment(
        root / f"trial-{number}.yaml",
        stack.prometheus.url,
        stack.shop.gateway_url,
        catalog_pattern(stack.shop),
        guards=GUARD,
        freeze_s=40,
        pause_s=0,
    )
    run_dir, code, stderr = run_once(experiment, root / f"runs-{number}", root / "ledger.jsonl")
    if code != 3:
        raise SystemExit(f"trial {number}: exit {code}, not aborted:\n{stderr[-2000:]}")
    checks = [json.loads(line) for line in (run_dir / "guards.jsonl").read_text().splitlines()]
    tripped = next(c for c in checks if c["trip"])
    events = [json.loads(line) for line in (run_dir / "faults.jsonl").read_text().splitlines()]
    injected = next(e["at"] for e in events if e["op"] == "inject")
    reverted = max(e["at"] for e in events if e["op"] == "revert")
    return round(reverted - (tripped["t"] + 1), 3), round(reverted - injected, 3)


def main() -> int:
    """Run the trials and print the figure against the goal."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    latencies, spans = [], []
    with tempfile.TemporaryDirectory(prefix="inoculate-bench-guard-") as tmp:
        root = Path(tmp)
        with scraped_shop(root) as stack:
            for number in range(args.trials):
                latency, span = one_trial(root, stack, number)
                latencies.append(latency)
                spans.append(span)
                print(f"  trial {number}: {latency:.3f} s (injection to revert {span:.3f} s)")
    median, worst = statistics.median(latencies), max(latencies)
    print(f"burn-rate guard, {args.trials} trials: observable breach -> last fault reverted")
    print(f"  median {median:.3f} s   max {worst:.3f} s")
    print(f"  injection -> revert: median {statistics.median(spans):.3f} s, max {max(spans):.3f} s")
    met = median <= GOAL_S and worst <= GOAL_S
    print(f"goal: median and max <= {GOAL_S:g} s: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
