"""Figure: time to detect from Prometheus (1 s scrapes) beside the load, on the same faults.

Each trial runs, through ``inoculate run``, a frozen catalog behind a gateway that answers
504 after 0.3 s (``tests.prometheus_support``: a shop and a Prometheus of its own on
loopback), with the browse availability SLO measured by the load and read from Prometheus.
Per trial and side: the row's first breach, as the monitor saw it, minus the freeze's
injection (its ledger time). Prints the trials, the median and max per side and of the
difference, against the goals: Prometheus within 3 s, and at most 2 s behind the load.

    python bench/prometheus_detection.py [--trials 5]
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

GOAL_S, GOAL_BEHIND_S = 3.0, 2.0


def one_trial(root: Path, stack, number: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Run the experiment once; return (load, Prometheus) times to detect in seconds."""
    experiment = frozen_catalog_experiment(
        root / f"trial-{number}.yaml",
        stack.prometheus.url,
        stack.shop.gateway_url,
        catalog_pattern(stack.shop),
    )
    run_dir, _, _ = run_once(experiment, root / f"runs-{number}", root / "ledger.jsonl")
    summary = json.loads((run_dir / "summary.json").read_text())
    [fault] = summary["faults"]
    seen = {row["source"]: row["first_breach"] for row in summary["slos"]}
    if not all(seen.get(side) for side in ("load", "prometheus")):
        raise SystemExit(f"trial {number}: a side saw no breach: {summary['reasons']}")
    return tuple(  # type: ignore[return-value]
        round(seen[side]["seen_at"] - fault["injected_at"], 3) for side in ("load", "prometheus")
    )


def main() -> int:
    """Run the trials and print the figures against the goals."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="inoculate-bench-prometheus-") as tmp:
        root = Path(tmp)
        with scraped_shop(root) as stack:
            trials = []
            for number in range(args.trials):
                load_s, prometheus_s = one_trial(root, stack, number)
                trials.append((load_s, prometheus_s))
                print(f"  trial {number}: load {load_s:.3f} s, Prometheus {prometheus_s:.3f} s")
    load = [t[0] for t in trials]
    prometheus = [t[1] for t in trials]
    behind = [p - lo for lo, p in trials]
    print(f"time to detect, frozen catalog, {args.trials} trials (1 s scrapes, 5 s window):")
    for name, values in (("load", load), ("Prometheus", prometheus), ("behind", behind)):
        print(f"  {name:<10} median {statistics.median(values):.3f} s   max {max(values):.3f} s")
    met = max(prometheus) <= GOAL_S and max(behind) <= GOAL_BEHIND_S
    print(
        f"goal: Prometheus <= {GOAL_S:g} s and <= {GOAL_BEHIND_S:g} s behind the load: "
        f"{'met' if met else 'NOT met'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
