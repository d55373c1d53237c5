"""Figure: what a long run costs — summary, report and SLO monitor at 10 min, 1 h and 4 h.

Gamedays and canaries run for hours, so every per-run cost must grow linearly with the
run's length. For synthetic runs of 10 min, 1 h and 4 h (5 endpoints, ~2,800 req/s, 5 SLOs,
one fault every 10 minutes: 1, 6 and 24 faults) this prints:

- the end-of-run summary: wall time of ``summarize`` over the run's facts, and whether it
  equals the ``summary.json`` on file (written, and timed, when the run was built: a run
  built by the code before a change checks the summary of the code after it);
- ``inoculate report`` as a subprocess: wall time, peak memory (``bench/command_cost.py``) and
  the size of ``report.html``;
- the cost per hour of run of each, and the 4 h cost per hour over the 10 min one
  (goal: within 1.5x, i.e. flat);
- the SLO monitor's CPU per second of run with 1 min and with 1 h of samples kept in its
  store: ``SloMonitor.poll()`` on a pre-filled store, one new sample per second and 20 polls
  per second (its 50 ms interval: one evaluates the new second, 19 find nothing new), then
  again with the load's open second rewritten three times a second and looked into;
- the goals: a 4 h report in at most 5 s and 300 MB.

A run writes ``sli-seconds.jsonl`` as it goes (``inoculate.session.figures``): each second's
report figures, so that its report decodes no histogram. The synthetic runs are given it the
same way, in one go; each report is also timed without it (decoding ``sli.jsonl``: a run
killed before it finished, or recorded before the file existed), and the CPU the session's
thread spends writing it is printed per second of run.

The runs are synthetic (``tests.synthetic``: real HDR histograms, real verdict code) and
cached with their facts in the temporary folder, since building the 4 h one takes minutes.
Usage::

    python bench/long_runs.py [--repeat 1] [--fresh]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import pickle
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from command_cost import Measure, measure  # noqa: E402  (bench/, the script's folder)

from inoculate.model.layout import SECONDS_FILE  # noqa: E402
from inoculate.model.summary import RunSummary  # noqa: E402
from inoculate.session.figures import PerSecondFigures  # noqa: E402
from inoculate.session.summarize import RunFacts, summarize  # noqa: E402
from inoculate.steady_state.monitor import Evaluation, SloMonitor  # noqa: E402
from inoculate.steady_state.samples import OpenSecond, SliSample  # noqa: E402
from inoculate.steady_state.slo import parse_slos  # noqa: E402
from inoculate.steady_state.store import SliStore  # noqa: E402
from tests.synthetic import SHOP_ENDPOINTS as ENDPOINTS  # noqa: E402
from tests.synthetic import SHOP_SLOS as SLOS  # noqa: E402
from tests.synthetic import Behaviour, SyntheticFault, build_synthetic_run  # noqa: E402

LENGTHS = {"10 min": 600, "1 h": 3600, "4 h": 14400}
REPORT_GOAL_S, REPORT_GOAL_MB, FLAT_GOAL = 5.0, 300.0, 1.5
SUMMARY_REPEAT, SUMMARY_BUDGET_S = 5, 10.0
MONITOR_KEPT_S = {"1 min": 60, "1 h": 3600}
MONITOR_SECONDS = 30  # evaluated seconds per measurement
POLLS_PER_SECOND = 20  # the monitor polls every 50 ms


def _faults(duration_s: int) -> list[SyntheticFault]:
    """A fault every 10 minutes, in turn a catalog kill and an orders freeze.

    Each makes its endpoint both fail and slow down enough that its availability and its
    latency SLO breach in the fault's first second, so every fault's recovery is judged on
    per-second latency too (the costly part), and every run, 10 min included, has the same
    mix of work per hour.
    """
    faults = []
    for n, start in enumerate(range(300, duration_s - 60, 600)):
        if n % 2 == 0:
            effects = {
                "GET /products": Behaviour(rps=300, latency_ms=1500, failure_rate=0.3),
                "GET /products/{id}": Behaviour(rps=300, latency_ms=1000, failure_rate=0.3),
            }
            faults.append(SyntheticFault(start, start + 20, effects, lingers_s=3))
        else:
            effects = {"POST /orders": Behaviour(rps=100, latency_ms=2000, failure_rate=0.5)}
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


# The cache holds pickled facts: a change to their fields makes a new cache, not a stale read.
_CACHE = (
    "inoculate-bench-long-runs-"
    + hashlib.sha1(
        repr([[f.name for f in fields(c)] for c in (RunFacts, Evaluation)]).encode()
    ).hexdigest()[:10]
)


def long_run(name: str, duration_s: int, fresh: bool) -> tuple[Path, RunFacts, float | None]:
    """The run directory, its facts, and the time its summary took when it was just built
    (the runs are built once, then reused from the temporary folder)."""
    folder = Path(tempfile.gettempdir()) / _CACHE / name.replace(" ", "")
    facts_file = folder / "facts.pickle"
    if fresh and folder.exists():
        shutil.rmtree(folder)
    summary_s = None
    if not facts_file.is_file():
        started = time.perf_counter()
        print(f"building the {name} synthetic run in {folder} ...", flush=True)
        timings: list[float] = []
        run = build_synthetic_run(
            folder,
            title=f"{name} gameday: catalog kills and orders freezes",
            duration_s=duration_s,
            endpoints=ENDPOINTS,
            slos=SLOS,
            faults=_faults(duration_s),
            seed=42,
            summarizer=_timed(timings),
        )
        facts_file.write_bytes(pickle.dumps(run.facts, protocol=pickle.HIGHEST_PROTOCOL))
        summary_s = timings[0]
        print(f"built in {time.perf_counter() - started:.0f} s", flush=True)
    facts = pickle.loads(facts_file.read_bytes())
    if not (folder / SECONDS_FILE).is_file():  # a run cached before the file existed
        PerSecondFigures(folder, facts.slos).finish()
    return folder, facts, summary_s


def _reduction_ms_per_second(folder: Path, facts: RunFacts, duration_s: int) -> float:
    """CPU the session's thread spends per second of run reducing the run's seconds (the
    whole file reduced once, into a scratch copy of sli-seconds.jsonl)."""
    scratch = Path(tempfile.mkdtemp(prefix="inoculate-bench-reduce-"))
    try:
        (scratch / "sli.jsonl").symlink_to(folder / "sli.jsonl")
        started = time.process_time()
        PerSecondFigures(scratch, facts.slos).finish()
        return (time.process_time() - started) * 1000 / duration_s
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _timed(timings: list[float]) -> Callable[[RunFacts], RunSummary]:
    def timed(facts: RunFacts) -> RunSummary:
        started = time.perf_counter()
        summary = summarize(facts)
        timings.append(time.perf_counter() - started)
        return summary

    return timed


@dataclass(frozen=True)
class RunCost:
    """The measured costs of one run length."""

    name: str
    folder: Path
    hours: float
    faults: int
    summary_s: float
    summary_equal: bool | None
    report: Measure
    html_mb: float
    decoded: Measure  # the same report decoding sli.jsonl (no sli-seconds.jsonl)
    reduce_ms: float  # CPU per second of run the session spends writing sli-seconds.jsonl


def run_cost(name: str, duration_s: int, fresh: bool, repeat: int) -> RunCost:
    """Summary and report figures of one run length (medians of ``repeat``; a fast summary
    is timed up to 5 times, within 10 s)."""
    folder, facts, built_s = long_run(name, duration_s, fresh)
    # Just built: its summary was timed then (on the same facts); not computed twice.
    timings = [] if built_s is None else [built_s]
    summary = None
    # A fast summary is timed a few times (milliseconds are noisy); a slow one once.
    while len(timings) < max(repeat, SUMMARY_REPEAT) and sum(timings) < SUMMARY_BUDGET_S:
        summary = _timed(timings)(facts)
    on_file = json.loads((folder / "summary.json").read_text())
    # None: the summary on file is the one just timed.
    equal = None if summary is None else json.loads(json.dumps(summary.to_json())) == on_file
    out = Path(tempfile.mkdtemp(prefix="inoculate-bench-long-out-"))
    command = [
        sys.executable,
        "-m",
        "inoculate.cli",
        "report",
        str(folder),
        "--out",
        str(out),
        "--history",
        str(out / "none.sqlite"),
    ]
    reports = [measure(command) for _ in range(repeat)]
    html_mb = (out / "report.html").stat().st_size / 1e6
    # The comparison: the same report decoding sli.jsonl's histograms (a run killed before
    # it wrote sli-seconds.jsonl, or one recorded before it existed).
    seconds_file = folder / SECONDS_FILE
    aside = seconds_file.rename(folder / f"{SECONDS_FILE}.aside")
    try:
        decoding = [measure(command) for _ in range(repeat)]
    finally:
        aside.rename(seconds_file)
    if any(m.code != 0 for m in [*reports, *decoding]):
        raise SystemExit(f"inoculate report failed on the {name} run:\n{reports[0].stderr}")
    shutil.rmtree(out, ignore_errors=True)
    report = Measure(
        statistics.median(m.wall_s for m in reports), max(m.peak_mb for m in reports), 0, ""
    )
    decoded = Measure(
        statistics.median(m.wall_s for m in decoding), max(m.peak_mb for m in decoding), 0, ""
    )
    reduce_ms = _reduction_ms_per_second(folder, facts, duration_s)
    faults = sum(1 for e in facts.fault_events if e.get("op") == "inject")
    return RunCost(
        name,
        folder,
        duration_s / 3600,
        faults,
        statistics.median(timings),
        equal,
        report,
        html_mb,
        decoded,
        reduce_ms,
    )


def monitor_cpu(kept_s: int, lines: list[str], open_seconds: bool) -> tuple[float, float]:
    """CPU ms per second of run, and of the evaluating poll alone, with ``kept_s`` kept;
    with ``open_seconds``, the load's open second is rewritten at .25, .5 and .75 (the next
    second's sample stands for it) and the monitor looks into each."""
    slos = list(parse_slos(SLOS))
    folder = Path(tempfile.mkdtemp(prefix="inoculate-bench-monitor-"))
    path, open_path = folder / "sli.jsonl", folder / "open-second.json"
    path.write_text("".join(lines[:kept_s]))
    store = SliStore(path, open_path=open_path if open_seconds else None)
    store.refresh()
    now = [float(store.latest_t() or 0) + 1.0]
    monitor = SloMonitor(slos, store, clock=lambda: now[0])
    monitor.poll()  # judges the newest second: the monitor is now caught up
    per_second, evaluating = [], []
    seconds = lines[kept_s : kept_s + MONITOR_SECONDS + 1]
    for line, following in itertools.pairwise(seconds):
        sample = SliSample.from_line(line)
        store.append(sample)
        now[0] = sample.t + 1.0
        cpu: list[float] = []
        for poll in range(POLLS_PER_SECOND):
            if open_seconds and poll and poll % (POLLS_PER_SECOND // 4) == 0:
                now[0] = sample.t + 1 + poll / POLLS_PER_SECOND
                OpenSecond(now[0], SliSample.from_line(following)).write(open_path)
            started = time.process_time()
            monitor.poll()
            cpu.append(time.process_time() - started)
        per_second.append(sum(cpu) * 1000)
        evaluating.append(cpu[0] * 1000)
    shutil.rmtree(folder, ignore_errors=True)
    return statistics.median(per_second), statistics.median(evaluating)


def main() -> int:
    """Print the figures and their comparisons."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--fresh", action="store_true", help="rebuild the synthetic runs")
    args = parser.parse_args()
    costs = [run_cost(name, s, args.fresh, args.repeat) for name, s in LENGTHS.items()]
    with (costs[-1].folder / "sli.jsonl").open(encoding="utf-8") as handle:
        lines = handle.readlines()
    monitor = {name: monitor_cpu(kept, lines, False) for name, kept in MONITOR_KEPT_S.items()}
    looking = {name: monitor_cpu(kept, lines, True) for name, kept in MONITOR_KEPT_S.items()}

    print(
        f"\nlong runs: {len(ENDPOINTS)} endpoints, ~2,800 req/s, {len(SLOS)} SLOs, a fault "
        f"every 10 min (median of {args.repeat}; shared 2-core machine)"
    )
    print(
        f"{'run':<7} {'faults':>6} {'summary s':>10} {'= on file':>9} {'report s':>9} "
        f"{'peak MB':>8} {'html MB':>8} {'summary s/h':>12} {'report s/h':>11} "
        f"{'decoding s':>11} {'peak MB':>8}"
    )
    for c in costs:
        equal = {True: "yes", False: "NO", None: "built"}[c.summary_equal]
        print(
            f"{c.name:<7} {c.faults:>6} {c.summary_s:>10.2f} {equal:>9}"
            f" {c.report.wall_s:>9.2f} {c.report.peak_mb:>8.0f} {c.html_mb:>8.2f}"
            f" {c.summary_s / c.hours:>12.2f} {c.report.wall_s / c.hours:>11.2f}"
            f" {c.decoded.wall_s:>11.2f} {c.decoded.peak_mb:>8.0f}"
        )
    print(
        "report s: with the per-second figures a run writes as it goes (sli-seconds.jsonl); "
        "decoding s: the same report decoding sli.jsonl's histograms instead"
    )
    print(
        "writing sli-seconds.jsonl during the run: "
        + ", ".join(f"{c.name} {c.reduce_ms:.2f} ms" for c in costs)
        + " of CPU per second of run"
    )
    long = costs[-1]
    flat = True
    for short in costs[:-1]:
        ratios = {
            "summary": _per_hour_ratio(short, long, lambda c: c.summary_s),
            "report": _per_hour_ratio(short, long, lambda c: c.report.wall_s),
        }
        flat = flat and all(r <= FLAT_GOAL for r in ratios.values())
        print(
            f"cost per hour, {long.name} over {short.name}: "
            + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items())
        )
    print(f"goal: cost per hour flat (<= {FLAT_GOAL:g}x): {'met' if flat else 'NOT met'}")
    print(
        f"SLO monitor, CPU per second of run ({POLLS_PER_SECOND} polls, one evaluating; "
        f"median of {MONITOR_SECONDS} s):"
    )
    for name, (per_second, evaluating) in monitor.items():
        print(
            f"  {name} of samples kept: {per_second:.2f} ms/s"
            f" (the evaluating poll {evaluating:.2f} ms);"
            f" looking into the open second too: {looking[name][0]:.2f} ms/s"
        )
    growth = monitor["1 h"][0] / monitor["1 min"][0]
    print(f"  1 h kept over 1 min kept: {growth:.2f}x")
    print(f"  the open second costs {looking['1 h'][0] / monitor['1 h'][0]:.2f}x at 1 h kept")
    met = long.report.wall_s <= REPORT_GOAL_S and long.report.peak_mb <= REPORT_GOAL_MB
    print(
        f"goal: {long.name} report <= {REPORT_GOAL_S:g} s and <= {REPORT_GOAL_MB:g} MB: "
        f"{'met' if met else 'NOT met'} ({long.report.wall_s:.2f} s, {long.report.peak_mb:.0f} MB)"
    )
    return 0


def _per_hour_ratio(short: RunCost, long: RunCost, cost: Callable[[RunCost], float]) -> float:
    return (cost(long) / long.hours) / (cost(short) / short.hours)


if __name__ == "__main__":
    sys.exit(main())
