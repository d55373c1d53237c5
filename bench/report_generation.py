"""Figure: report generation for a long run (1 hour of 1 s samples, 5 endpoints, ~10M requests).

Prints the wall time and peak memory (max RSS of the process tree's largest process, from
``wait4``) of ``inoculate report`` on that run, and, on the same journal, of its peer
``chaos report`` (chaostoolkit-reporting, HTML through pandoc). Goal: under 3 s and under
300 MB. The peer renders the journal only: it has no notion of per-second SLI series,
plots or scores, so it does less work; it is the tool a Chaos Toolkit user has today.

The run is synthetic (``tests.synthetic``: real HDR histograms, real verdict code) and
cached in the temporary folder, since building it takes a minute. Usage::

    python bench/report_generation.py [--repeat 3] [--fresh]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from command_cost import Measure, measure  # noqa: E402  (bench/, the script's folder)

from tests.synthetic import SHOP_ENDPOINTS as ENDPOINTS  # noqa: E402
from tests.synthetic import SHOP_SLOS as SLOS  # noqa: E402
from tests.synthetic import Behaviour, SyntheticFault, write_synthetic_run  # noqa: E402

DURATION_S = 3600
GOAL_S, GOAL_MB = 3.0, 300.0


def _faults() -> list[SyntheticFault]:
    """A fault every 10 minutes, alternating a catalog kill and an orders freeze."""
    faults = []
    for n, start in enumerate(range(300, DURATION_S - 300, 600)):
        if n % 2 == 0:
            effects = {
                "GET /products": Behaviour(rps=300, latency_ms=400, failure_rate=0.2),
                "GET /products/{id}": Behaviour(rps=300, latency_ms=300, failure_rate=0.2),
            }
            faults.append(SyntheticFault(start, start + 20, effects, lingers_s=3))
        else:
            effects = {"POST /orders": Behaviour(rps=50, latency_ms=2000, failure_rate=0.5)}
            faults.append(
                SyntheticFault(
                    start,
                    start + 15,
                    effects,
                    lingers_s=2,
                    fault="freeze",
                    target={"service": "orders"},
                    description="SIGSTOP service=orders",
                )
            )
    return faults


def long_run(fresh: bool) -> Path:
    """The hour-long run directory (built once, then reused from the temporary folder)."""
    folder = Path(tempfile.gettempdir()) / "inoculate-bench-report-generation-v1"
    if fresh and folder.exists():
        shutil.rmtree(folder)
    if not (folder / "journal.json").is_file():
        started = time.perf_counter()
        print(f"building the hour-long synthetic run in {folder} ...", flush=True)
        write_synthetic_run(
            folder,
            title="Hour-long gameday: catalog kills and orders freezes",
            duration_s=DURATION_S,
            endpoints=ENDPOINTS,
            slos=SLOS,
            faults=_faults(),
            method_s=(290.0, DURATION_S - 290.0),
            seed=42,
        )
        print(f"built in {time.perf_counter() - started:.0f} s", flush=True)
    return folder


def main() -> int:
    """Print the figure and its comparison."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fresh", action="store_true", help="rebuild the synthetic run")
    args = parser.parse_args()
    run = long_run(args.fresh)
    lines = sum(1 for _ in (run / "sli.jsonl").open())
    requests = _requests(run)
    out = Path(tempfile.mkdtemp(prefix="inoculate-bench-out-"))
    ours = [
        measure(
            [
                sys.executable,
                "-m",
                "inoculate.cli",
                "report",
                str(run),
                "--out",
                str(out),
                "--history",
                str(out / "none.sqlite"),
            ]
        )
        for _ in range(args.repeat)
    ]
    if any(m.code != 0 for m in ours):
        print(ours[0].stderr, file=sys.stderr)
        return 1
    chaos = Path(sys.executable).with_name("chaos")
    peer = [
        measure(
            [
                str(chaos),
                "--no-log-file",
                "report",
                "--export-format",
                "html",
                str(run / "journal.json"),
                str(out / "chaos-report.html"),
            ]
        )
        for _ in range(args.repeat)
    ]
    html_mb = (out / "report.html").stat().st_size / 1e6
    print(
        f"\nreport generation, {lines} s of samples, {len(ENDPOINTS)} endpoints, "
        f"{requests / 1e6:.1f} M requests (median of {args.repeat}; shared 2-core machine)"
    )
    print(f"{'tool':<44} {'wall (s)':>9} {'peak RSS (MB)':>14}")
    _row("inoculate report (html, md, junit, json)", ours)
    if all(m.code == 0 for m in peer):
        _row("chaos report --export-format html (peer)", peer)
    else:
        reason = (peer[0].stderr.strip().splitlines() or ["no output"])[-1]
        print(f"{'chaos report (peer)':<44} failed: {reason}")
    wall = statistics.median(m.wall_s for m in ours)
    peak = max(m.peak_mb for m in ours)
    verdict = "met" if wall < GOAL_S and peak < GOAL_MB else "NOT met"
    print(f"goal < {GOAL_S:g} s and < {GOAL_MB:g} MB: {verdict}; report.html {html_mb:.1f} MB")
    shutil.rmtree(out, ignore_errors=True)
    return 0


def _requests(run: Path) -> int:
    import numpy as np

    from inoculate.reports.series import load_series

    return int(np.sum(load_series(run / "sli.jsonl", ()).total.completed))


def _row(name: str, measures: list[Measure]) -> None:
    wall = statistics.median(m.wall_s for m in measures)
    peak = max(m.peak_mb for m in measures)
    print(f"{name:<44} {wall:>9.2f} {peak:>14.0f}")


if __name__ == "__main__":
    sys.exit(main())
