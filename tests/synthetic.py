"""Synthetic runs: a complete run directory from a declarative profile, with known answers.

The tests score hand-made runs whose answers are known, and the benchmark needs an
hour-long run with millions of requests; neither can wait for real load. This module
writes what ``inoculate run`` writes — ``sli.jsonl`` (HDR histograms in the standard
encoding), ``faults.jsonl``, ``summary.json`` (computed by ``inoculate.session.summarize``, the real
verdict code, over SLO evaluations of each second) and ``journal.json`` — from endpoints
that behave one way normally and another while a fault is active.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from inoculate.model.files import write_json_atomic
from inoculate.model.summary import RunSummary
from inoculate.session.figures import PerSecondFigures
from inoculate.session.summarize import RunFacts, summarize
from inoculate.steady_state.monitor import Evaluation
from inoculate.steady_state.samples import EndpointSecond, SliSample, new_histogram
from inoculate.steady_state.slo import evaluate_all, parse_slos

__all__ = [
    "SHOP_ENDPOINTS",
    "SHOP_SLOS",
    "Behaviour",
    "SyntheticFault",
    "SyntheticRun",
    "build_synthetic_run",
    "encode_latencies",
    "write_synthetic_run",
]

T0 = 1_700_000_000


@dataclass(frozen=True)
class Behaviour:
    """How an endpoint behaves: requests per second, median latency, failure rate."""

    rps: float
    latency_ms: float = 20.0
    failure_rate: float = 0.0
    spread: float = 0.3  # sigma of the log-normal latency distribution


@dataclass(frozen=True)
class SyntheticFault:
    """A fault from ``injected_s`` to ``reverted_s`` (seconds from the start of the run).

    While active, and for ``lingers_s`` seconds after the revert, the endpoints named in
    ``effects`` behave as given there instead of normally.
    """

    injected_s: float
    reverted_s: float
    effects: Mapping[str, Behaviour]
    lingers_s: float = 0.0
    module: str = "inoculate.extensions.process"
    fault: str = "kill"
    target: Mapping[str, str] = field(default_factory=lambda: {"service": "catalog"})
    description: str = "SIGKILL service=catalog"


def encode_latencies(latencies_us: np.ndarray) -> str:
    """An HDR histogram of ``latencies_us`` in the standard encoding (vectorised recording).

    Recording millions of values one ``record_value`` call at a time takes minutes; here
    the bucket index of every value is computed with numpy, using hdrh's own formula.
    """
    histogram = new_histogram()
    values = np.clip(np.asarray(latencies_us, dtype=np.int64), 0, None)
    if values.size == 0:
        return ""
    index = _counts_index(values, histogram)
    counts = np.bincount(index, minlength=histogram.counts_len)
    target = np.frombuffer(histogram.counts, dtype=np.uint64, count=histogram.counts_len)
    target[:] = counts[: histogram.counts_len]
    nonzero = np.flatnonzero(counts)
    histogram.set_internal_tacking_values(int(nonzero[0]), int(nonzero[-1]), int(values.size))
    return histogram.encode().decode("ascii")


def _counts_index(values: np.ndarray, histogram: Any) -> np.ndarray:
    # hdrh: bucket = 64 - clz(value | sub_bucket_mask) - unit_magnitude - (half_mag + 1);
    # frexp's exponent is exactly the bit length for integers below 2**53.
    _, bit_length = np.frexp((values | histogram.sub_bucket_mask).astype(np.float64))
    bucket = bit_length - histogram.unit_magnitude - (histogram.sub_bucket_half_count_magnitude + 1)
    sub_bucket = values >> (bucket + histogram.unit_magnitude)
    base = (bucket + 1) << histogram.sub_bucket_half_count_magnitude
    return base + sub_bucket - histogram.sub_bucket_half_count


def _second(behaviour: Behaviour, rng: np.random.Generator) -> EndpointSecond:
    completed = int(rng.poisson(behaviour.rps)) if behaviour.rps > 0 else 0
    failures = int(rng.binomial(completed, min(1.0, behaviour.failure_rate))) if completed else 0
    median_us = max(1.0, behaviour.latency_ms * 1000)
    latencies = rng.lognormal(np.log(median_us), behaviour.spread, completed)
    return EndpointSecond(completed, completed, failures, encode_latencies(latencies))


def _behaviour(
    name: str, normal: Behaviour, second: int, faults: Sequence[SyntheticFault]
) -> Behaviour:
    for fault in faults:
        if (
            name in fault.effects
            and fault.injected_s <= second < fault.reverted_s + fault.lingers_s
        ):
            return fault.effects[name]
    return normal


@dataclass(frozen=True)
class _Verdicts:
    """What the run's hypothesis checks say (computed from the SLOs unless given)."""

    before: bool | None
    after: bool | None


@dataclass(frozen=True)
class SyntheticRun:
    """A written run directory and the facts its summary was computed from."""

    directory: Path
    facts: RunFacts


def write_synthetic_run(directory: Path, **profile: Any) -> Path:
    """Write a complete run directory; return it (see :func:`build_synthetic_run`)."""
    return build_synthetic_run(directory, **profile).directory


def build_synthetic_run(
    directory: Path,
    *,
    title: str = "Synthetic experiment",
    duration_s: int = 40,
    endpoints: Mapping[str, Behaviour],
    slos: Sequence[Mapping[str, Any]],
    faults: Sequence[SyntheticFault] = (),
    method_s: tuple[float, float] | None = None,
    hypothesis_before: bool | None = None,
    hypothesis_after: bool | None = None,
    recovery_objective_s: float | None = 5.0,
    runbook: str | None = None,
    failed_rollbacks: Sequence[str] = (),
    seed: int = 0,
    t0: int = T0,
    summarizer: Callable[[RunFacts], RunSummary] = summarize,
    per_second: bool = True,
) -> SyntheticRun:
    """Write a complete run directory (verdicts from ``inoculate.session.summarize``).

    The facts are returned too, and ``summarizer`` computes the summary, so that a
    benchmark can time it on its own. With ``per_second`` (the default) the run's
    ``sli-seconds.jsonl`` is written as a real run's session writes it.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    samples = _write_samples(directory, duration_s, endpoints, faults, seed, t0)
    parsed = list(parse_slos(list(slos)))
    if per_second:
        # What the session's thread writes during a run, written here in one go.
        PerSecondFigures(directory, parsed).finish()
    if method_s is None:
        method_s = (
            (min(f.injected_s for f in faults), max(f.reverted_s for f in faults) - 0.3)
            if faults
            else (duration_s / 3, 2 * duration_s / 3)
        )
    method = (t0 + method_s[0], t0 + method_s[1])
    evaluations = _evaluations(parsed, samples)
    before = hypothesis_before
    if before is None:
        before = _all_met(evaluations, int(method[0]) - 1)
    after = hypothesis_after
    if after is None:
        after = _all_met(evaluations, t0 + duration_s - 1)
    verdicts = _Verdicts(before, None if before is False else after)
    events = _fault_events(faults, t0)
    (directory / "faults.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    facts = RunFacts(
        title=title,
        slos=parsed,
        evaluations=evaluations,
        samples=samples,
        fault_events=events,
        method_window=method,
        hypothesis_before=verdicts.before,
        hypothesis_after=verdicts.after,
        failed_rollbacks=tuple(failed_rollbacks),
        recovery_objective_s=recovery_objective_s,
        extra={
            "run_id": f"synthetic-{seed}-{t0}",
            "run_dir": str(directory),
            "journal": "journal.json",
            "samples_file": "sli.jsonl",
            "reverted_at_start": [],
            "reverted_by_safety_net": [],
            "runbook": runbook,
            "system_at_end": {},
        },
    )
    summary = summarizer(facts).to_json()
    write_json_atomic(directory / "summary.json", summary)
    experiment = _experiment(directory, title, slos, faults, runbook)
    journal = _journal(experiment, faults, summary, t0, duration_s, failed_rollbacks)
    write_json_atomic(directory / "journal.json", journal)
    return SyntheticRun(directory, facts)


def _write_samples(
    directory: Path,
    duration_s: int,
    endpoints: Mapping[str, Behaviour],
    faults: Sequence[SyntheticFault],
    seed: int,
    t0: int,
) -> list[SliSample]:
    rng = np.random.default_rng(seed)
    samples = []
    with (directory / "sli.jsonl").open("w", encoding="utf-8") as handle:
        for second in range(duration_s):
            parts = {
                name: _second(_behaviour(name, normal, second, faults), rng)
                for name, normal in endpoints.items()
            }
            sample = SliSample(t0 + second, parts)
            samples.append(sample)
            handle.write(sample.to_line() + "\n")
    return samples


def _evaluations(slos: Sequence[Any], samples: Sequence[SliSample]) -> list[Evaluation]:
    if not slos:
        return []
    longest = max(slo.window_s for slo in slos)
    evaluations = []
    for i, sample in enumerate(samples):
        # The window of every SLO lies within the last `longest` samples (one per second).
        recent = samples[max(0, i - longest + 1) : i + 1]
        verdicts = tuple(evaluate_all(slos, recent, sample.t))
        evaluations.append(Evaluation(sample.t, sample.t + 1.05, verdicts))
    return evaluations


def _all_met(evaluations: Sequence[Evaluation], t: int) -> bool:
    at = [e for e in evaluations if e.t == t]
    return all(not e.breached for e in at) if at else True


def _fault_events(faults: Sequence[SyntheticFault], t0: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for number, fault in enumerate(faults):
        fault_id = f"fault-{number}"
        events.append(
            {
                "op": "inject",
                "id": fault_id,
                "at": t0 + fault.injected_s,
                "kind": f"process:{fault.fault}",
                "target": dict(fault.target),
                "description": fault.description,
            }
        )
        events.append({"op": "revert", "id": fault_id, "at": t0 + fault.reverted_s})
    return sorted(events, key=lambda e: e["at"])


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


_PROBE = {
    "type": "probe",
    "name": "slos-met",
    "tolerance": {"type": "jsonpath", "path": "$.met", "expect": True},
    "provider": {"type": "python", "module": "inoculate.steady_state.probes", "func": "slos_met"},
}


def _action(name: str, module: str, func: str, target: Mapping[str, str]) -> dict[str, Any]:
    provider = {"type": "python", "module": module, "func": func, "arguments": dict(target)}
    return {"type": "action", "name": name, "provider": provider}


def _experiment(
    directory: Path,
    title: str,
    slos: Sequence[Mapping[str, Any]],
    faults: Sequence[SyntheticFault],
    runbook: str | None,
) -> dict[str, Any]:
    return {
        "title": title,
        "description": "A synthetic run with known answers.",
        "tags": ["synthetic"],
        # Runbook paths resolve against the run directory, as if the experiment sat there.
        "configuration": {"inoculate_base_dir": str(directory)},
        "extensions": [{"name": "inoculate", "slos": list(slos), "runbook": runbook}],
        "steady-state-hypothesis": {"title": "The SLOs are met", "probes": [_PROBE]},
        "method": [
            _action(f"fault-{i}", f.module, f.fault, f.target) for i, f in enumerate(faults)
        ],
        "rollbacks": [
            _action(f"undo-fault-{i}", f.module, "ensure_running", f.target)
            for i, f in enumerate(faults)
        ],
    }


def _state(met: bool | None) -> dict[str, Any] | None:
    if met is None:
        return None
    probe = {"activity": _PROBE, "status": "succeeded", "output": {"met": met}}
    return {"steady_state_met": met, "probes": [{**probe, "tolerance_met": met}]}


def _ran(activity: Mapping[str, Any], at: float, failed: bool = False) -> dict[str, Any]:
    return {
        "activity": dict(activity),
        "status": "failed" if failed else "succeeded",
        "start": _iso(at),
        "end": _iso(at + 0.01),
        "duration": 0.01,
        "output": None,
    }


def _journal(
    experiment: Mapping[str, Any],
    faults: Sequence[SyntheticFault],
    summary: Mapping[str, Any],
    t0: int,
    duration_s: int,
    failed_rollbacks: Sequence[str],
) -> dict[str, Any]:
    hypothesis = summary["hypothesis"]
    pairs = zip(experiment["rollbacks"], faults, strict=True)
    return {
        "chaoslib-version": "1.44.0",
        "platform": "synthetic",
        "node": "synthetic",
        "experiment": dict(experiment),
        "start": _iso(t0),
        "end": _iso(t0 + duration_s),
        "duration": float(duration_s),
        "status": "completed",
        "deviated": hypothesis["after"] is False,
        "steady_states": {
            "before": _state(hypothesis["before"]),
            "after": _state(hypothesis["after"]),
            "during": [],
        },
        "run": [
            _ran(a, t0 + f.injected_s) for a, f in zip(experiment["method"], faults, strict=True)
        ],
        "rollbacks": [
            _ran(r, t0 + f.reverted_s, failed=r["name"] in failed_rollbacks) for r, f in pairs
        ],
        "inoculate": dict(summary),
    }


# The synthetic shop both long-run benches measure: 5 endpoints at ~2,800 req/s, 5 SLOs.
SHOP_ENDPOINTS = {
    "GET /products": Behaviour(rps=560, latency_ms=18, spread=0.5),
    "GET /products/{id}": Behaviour(rps=560, latency_ms=12, spread=0.5),
    "GET /cart": Behaviour(rps=550, latency_ms=9, spread=0.4),
    "POST /orders": Behaviour(rps=550, latency_ms=35, spread=0.6),
    "GET /orders/{id}": Behaviour(rps=555, latency_ms=15, spread=0.5),
}
SHOP_SLOS: list[dict[str, object]] = [
    {
        "name": "browse-availability",
        "sli": "availability",
        "endpoint": "GET /products",
        "objective": 99.0,
        "window_s": 10,
    },
    {
        "name": "browse-latency",
        "sli": "latency",
        "endpoint": "GET /products",
        "percentile": 95,
        "threshold_ms": 250,
        "window_s": 10,
    },
    {
        "name": "checkout-availability",
        "sli": "availability",
        "endpoint": "POST /orders",
        "objective": 99.5,
        "window_s": 10,
    },
    {
        "name": "checkout-latency",
        "sli": "latency",
        "endpoint": "POST /orders",
        "percentile": 99,
        "threshold_ms": 600,
        "window_s": 10,
    },
    {"name": "shop-throughput", "sli": "throughput", "min_rps": 2000, "window_s": 5},
]
