"""Steady-state probes: SLO verdicts over the run's SLI samples, and a plain HTTP check.

Ordinary Chaos Toolkit python probes. The SLO probes find the run through the experiment's
configuration key ``inoculate_run_dir`` (inoculate injects it; under a plain ``chaos run``
set it in the experiment's ``configuration`` block). That directory holds:

- ``inoculate.json``: a JSON object whose ``"slos"`` key lists the SLO specs;
- ``sli.jsonl``: one SLI sample per second, appended by the load generator's pump.

Use them in a steady-state hypothesis with a JSON-path tolerance on ``met``::

    - type: probe
      name: browse-slos-met
      tolerance: {type: jsonpath, path: "$.met", expect: true}
      provider: {type: python, module: inoculate.steady_state.probes, func: slos_met}

(JSON-path tolerances need the ``jsonpath2`` package, i.e. ``chaostoolkit-lib[jsonpath]``.)
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from chaoslib.types import Configuration
from pydantic import ValidationError

from inoculate.model.errors import RunDirectoryError, UnknownSloError
from inoculate.model.layout import RUN_DIR_CONFIG_KEY, SAMPLES_FILE, SPEC_FILE
from inoculate.steady_state.prometheus import PrometheusClient, evaluate
from inoculate.steady_state.prometheus_spec import PrometheusSource
from inoculate.steady_state.server_side import (
    ServerSideSlo,
    judged,
    reading_verdict,
    server_side_slos,
)
from inoculate.steady_state.slo import (
    Slo,
    SloSet,
    SloVerdict,
    evaluate_all,
    evaluate_slo,
    parse_slos,
)
from inoculate.steady_state.store import SliStore, last_judged_second

__all__ = ["http_healthy", "slo_met", "slos_met"]


def slos_met(slos: list[str] | None = None, configuration: Configuration = None) -> dict:
    """Evaluate the run's SLOs at the latest complete second of load, and their Prometheus
    sides (``NAME.prometheus``) now.

    slos: names of the SLOs to evaluate (default: every SLO of the run, both sides).
    Returns {"met": true only if every SLO is met, "at": the window's last second,
    "latest_sample": the newest second of data, "slos": [one verdict per SLO]}. Each verdict
    gives the SLI value, the objective, the window, the request count, the burn rate and,
    when not met, the reason. Use with tolerance {type: jsonpath, path: "$.met", expect: true}.
    """
    run_dir = _run_dir(configuration)
    spec = _load_spec(run_dir)
    load_side, server_side = _select(spec, slos)
    verdicts, end_t, latest = [], None, None
    if load_side:
        store = _load_store(run_dir)
        latest = store.latest_t()
        end_t = last_judged_second(latest, time.time())
        verdicts = evaluate_all(load_side, store.samples(), end_t)
    verdicts += _read_server_side(spec, server_side)
    return {
        "met": all(verdict.met for verdict in verdicts),
        "at": end_t,
        "latest_sample": latest,
        "slos": [verdict.to_json() for verdict in verdicts],
    }


def slo_met(slo: str, configuration: Configuration = None) -> dict:
    """Evaluate one SLO of the run at the latest complete second of load (or, for a
    ``NAME.prometheus`` side, from Prometheus now).

    slo: the SLO's name. Returns its verdict: {"met", "value", "objective", "window_start",
    "window_end", "requests", "burn_rate", "reason", ...}.
    Use with tolerance {type: jsonpath, path: "$.met", expect: true}.
    """
    run_dir = _run_dir(configuration)
    spec = _load_spec(run_dir)
    load_side, server_side = _select(spec, [slo])
    if server_side:
        verdicts = _read_server_side(spec, server_side)
        if not verdicts:  # missing data, and the SLI says to skip it
            return {"name": server_side[0].name, "met": True, "judged": False,
                    "reason": "no data from Prometheus; missing_data: skip"}  # fmt: skip
        return verdicts[0].to_json()
    store = _load_store(run_dir)
    end_t = last_judged_second(store.latest_t(), time.time())
    return evaluate_slo(load_side[0], store.samples(), end_t).to_json()


def http_healthy(url: str, expect_status: int = 200, timeout_s: float = 2.0) -> dict:
    """GET ``url`` once and say whether it answered with ``expect_status`` in time.

    Returns {"met": bool, "status": the HTTP status or null, "latency_ms": time to the
    response (or to the error), "error": null or why no response came}. Redirects are not
    followed. Use with tolerance {type: jsonpath, path: "$.met", expect: true}.
    """
    started = time.perf_counter()
    try:
        response = requests.get(url, timeout=timeout_s, allow_redirects=False)
    except requests.RequestException as exc:
        return {
            "met": False,
            "status": None,
            "latency_ms": _elapsed_ms(started),
            "error": f"{type(exc).__name__}: {exc}",
        }
    return {
        "met": response.status_code == expect_status,
        "status": response.status_code,
        "latency_ms": _elapsed_ms(started),
        "error": None,
    }


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _run_dir(configuration: Configuration | None) -> Path:
    value = (configuration or {}).get(RUN_DIR_CONFIG_KEY)
    if not value:
        raise RunDirectoryError(
            f"configuration key {RUN_DIR_CONFIG_KEY!r} is missing: run the experiment with "
            f"`inoculate run`, or set {RUN_DIR_CONFIG_KEY} in the experiment's configuration "
            "to the directory holding inoculate.json and sli.jsonl"
        )
    run_dir = Path(str(value))
    if not run_dir.is_dir():
        raise RunDirectoryError(f"run directory {run_dir} ({RUN_DIR_CONFIG_KEY}) does not exist")
    return run_dir


@dataclass(frozen=True)
class _RunSlos:
    """The run's SLOs as ``inoculate.json`` declares them, and where Prometheus is."""

    slos: SloSet
    has_load: bool
    prometheus: PrometheusSource | None


def _load_spec(run_dir: Path) -> _RunSlos:
    spec_path = run_dir / SPEC_FILE
    try:
        document: Any = json.loads(spec_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RunDirectoryError(f"{spec_path} not found: the run has no SLO specs") from exc
    except json.JSONDecodeError as exc:
        raise RunDirectoryError(f"{spec_path} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or "slos" not in document:
        raise RunDirectoryError(f'{spec_path} must be a JSON object with a "slos" list')
    try:
        slos = parse_slos(document["slos"])
        source = document.get("prometheus")
        prometheus = None if source is None else PrometheusSource.model_validate(source)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise RunDirectoryError(f"{spec_path} has invalid SLO specs: {problems}") from exc
    # A spec written by hand for a plain `chaos run` may leave `load` out: load it is then.
    has_load = document.get("load", True) is not None
    return _RunSlos(slos, has_load, prometheus)


def _describe(error: Any) -> str:
    """One pydantic error as ``slos[0].latency.threshold_ms: Input should be ...``."""
    where = "slos" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
    return f"{where}: {error['msg']}"


def _select(spec: _RunSlos, names: list[str] | str | None) -> tuple[list[Slo], list[ServerSideSlo]]:
    load_side = {slo.name: slo for slo in spec.slos} if spec.has_load else {}
    server_side = {side.name: side for side in server_side_slos(spec.slos)}
    if names is None:
        chosen = [*load_side.values(), *server_side.values()]
    else:
        # A single name where a list was meant must not be read letter by letter.
        wanted = [names] if isinstance(names, str) else list(names)
        unknown = [n for n in wanted if n not in load_side and n not in server_side]
        if unknown:
            known = ", ".join([*load_side, *server_side]) or "none"
            raise UnknownSloError(
                f"unknown SLO {', '.join(map(repr, unknown))}; the run defines: {known}"
            )
        chosen = [load_side.get(n) or server_side[n] for n in wanted]
    if not chosen:
        raise UnknownSloError("no SLO to evaluate: the run defines none and none was named")
    return (
        [c for c in chosen if not isinstance(c, ServerSideSlo)],
        [c for c in chosen if isinstance(c, ServerSideSlo)],
    )


def _read_server_side(spec: _RunSlos, sides: list[ServerSideSlo]) -> list[SloVerdict]:
    """Each side read from Prometheus now, over its window (missing data: not met)."""
    if not sides:
        return []
    if spec.prometheus is None:
        raise RunDirectoryError("the run's SLOs name Prometheus SLIs but no `prometheus` server")
    with PrometheusClient(spec.prometheus) as client:
        now = time.time()
        readings = [(evaluate(client, side.slo, side.prometheus, now), side) for side in sides]
    return [reading_verdict(r, side) for r, side in readings if judged(r, side)]


def _load_store(run_dir: Path) -> SliStore:
    sli_path = run_dir / SAMPLES_FILE
    if not sli_path.is_file():
        raise RunDirectoryError(f"{sli_path} not found: no SLI samples were recorded for this run")
    store = SliStore(sli_path)
    store.refresh()
    return store
