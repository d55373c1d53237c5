"""Plots of a run as inline SVG: throughput, error rate and latency percentiles over time.

Fault windows are shaded, SLO thresholds drawn, detection and recovery marked. Figures
are built with matplotlib's object API (no pyplot, so no global figure state between
runs) and written as SVG text that the HTML report embeds: no image file, no network.

A line has at most ``MAX_POINTS`` points, whatever the run's length: a run longer than that
many seconds is drawn in steps of several seconds (:func:`envelope` keeps each step's lowest
and highest second). The line shows each step's worst second, the side that breaks an SLO:
the lowest for throughput, the highest for error rate and latency, so a one-second dip or
spike is never averaged away. The figure's caption says how many seconds a step spans.
(Drawing the band from lowest to highest as well would triple the plots' SVG and double
the time to draw them, for seconds that break nothing.)
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from inoculate.reports.model import RunReport, TrendPoint, reads_prometheus
from inoculate.reports.series import ALL_ENDPOINTS, EndpointSeries, SliSeries

__all__ = ["MAX_POINTS", "Envelope", "Plot", "envelope", "run_plots", "trend_plot"]

MAX_POINTS = 1000

_FAULT = "#d62728"
_DETECT = "#ff7f0e"
_RECOVER = "#2ca02c"
_SLO = "#6a3d9a"
_MARGINS = {"left": 0.07, "top": 0.95, "bottom": 0.16}
# The share of a 10-inch figure a legend at font size 7 takes: its handle and gap, and per
# character of its longest label (measured on the demo's labels, with room to spare).
_LEGEND_PAD, _LEGEND_PER_CHAR, _NARROWEST_RIGHT = 0.05, 0.0064, 0.55
_RC = {
    "svg.fonttype": "none",  # text stays text: searchable, and smaller
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


@dataclass(frozen=True)
class Plot:
    """One figure: a stable id, a caption, and its SVG markup."""

    key: str
    title: str
    svg: str


@dataclass(frozen=True)
class Envelope:
    """A per-second series in steps of ``seconds`` seconds: each step's lowest and highest
    value (NaN seconds ignored; NaN when a step has no value at all)."""

    seconds: int
    x: np.ndarray  # the first second of each step
    low: np.ndarray
    high: np.ndarray


def envelope(x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS) -> Envelope:
    """``y`` (one value per ``x``, one per second) in at most ``max_points`` equal steps."""
    n = len(y)
    seconds = _step_seconds(n, max_points)
    values = np.asarray(y, dtype=float)
    if seconds == 1:
        return Envelope(1, np.asarray(x), values, values)
    steps = -(-n // seconds)
    grid = np.full(steps * seconds, np.nan)
    grid[:n] = values
    grid = grid.reshape(steps, seconds)
    # fmin/fmax skip NaN (a second without requests) unless the whole step is NaN.
    low, high = np.fmin.reduce(grid, axis=1), np.fmax.reduce(grid, axis=1)
    return Envelope(seconds, np.asarray(x)[::seconds], low, high)


def run_plots(report: RunReport) -> list[Plot]:
    """Throughput, error rate and latency plots of a run (empty without SLI series)."""
    series = report.series
    if series is None or series.t.size == 0:
        return []
    origin = report.method_window[0] if report.method_window else float(series.t[0])
    x = series.t.astype(float) - origin
    # The plots draw the load's series: the Prometheus sides' thresholds are not theirs.
    specs = [dict(v.spec) for v in report.slos if not reads_prometheus(v.spec)]
    step = _step_seconds(x.size)
    plots = [
        _plot(
            "throughput",
            "Throughput (answered requests per second: successful solid, failed dashed)"
            + _step_note(step, "worst"),
            report,
            x,
            origin,
            lambda ax: _throughput(ax, series, x, specs),
        ),
        _plot(
            "error-rate",
            "Error rate (% of completed requests that failed)" + _step_note(step, "highest"),
            report,
            x,
            origin,
            lambda ax: _errors(ax, series, x, specs),
        ),
    ]
    for endpoint in series.latency_of:
        selected = series.select(endpoint)
        if selected is None:
            continue
        name = endpoint or ALL_ENDPOINTS
        plots.append(
            _plot(
                f"latency-{_slug(name)}",
                f"Latency p50 / p95 / p99 (ms): {name}" + _step_note(step, "highest"),
                report,
                x,
                origin,
                lambda ax, s=selected, e=endpoint: _latency(ax, s, e, x, specs),
            )
        )
    return plots


def trend_plot(
    points: Sequence[TrendPoint],
    key: str = "trend",
    title: str = "Score trend",
    failed_label: str = "run failed",
) -> Plot:
    """Scores of past runs, oldest first (runs without a score are left out)."""
    scored = [p for p in points if p.score is not None]
    with matplotlib.rc_context({**_RC, "svg.hashsalt": f"inoculate-{key}"}):
        figure = Figure(figsize=(9, 2.6), layout="constrained")
        ax = figure.add_subplot()
        runs = np.arange(1, len(scored) + 1)
        ax.plot(runs, [p.score for p in scored], marker="o", color="#1f77b4", label="score")
        failed = [(i, p.score) for i, p in zip(runs, scored, strict=True) if p.status != "passed"]
        if failed:
            ax.scatter(*zip(*failed, strict=True), color=_FAULT, zorder=3, label=failed_label)
        ax.set_ylim(0, 105)
        ax.set_xlabel("run on record (oldest → newest)")
        ax.set_ylabel("score")
        ax.set_xticks(runs)
        ax.legend(loc="lower left", fontsize=8)
        return Plot(key, title, _svg(figure))


# --------------------------------------------------------------------------- figure helpers


def _plot(key, title, report, x, origin, draw) -> Plot:  # type: ignore[no-untyped-def]
    with matplotlib.rc_context({**_RC, "svg.hashsalt": f"inoculate-{key}"}):
        # Fixed margins, the legend beside the axes in as much room as its longest label
        # takes: matplotlib's constrained layout solved them anew for every figure, half
        # of a report's drawing time.
        figure = Figure(figsize=(10, 3.0))
        ax = figure.add_subplot()
        draw(ax)
        _mark_faults(ax, report, origin)
        reference = "fault injection (method start)" if report.method_window else "first sample"
        ax.set_xlabel(f"seconds from {reference}")
        ax.set_xlim(float(x[0]), float(x[-1]) + 1)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
        longest = max((len(t) for t in ax.get_legend_handles_labels()[1]), default=0)
        legend_share = _LEGEND_PAD + _LEGEND_PER_CHAR * longest
        figure.subplots_adjust(**_MARGINS, right=max(_NARROWEST_RIGHT, 1 - legend_share))
        # A legend wider than that room makes the figure grow to hold it (slower, rare).
        bbox = "tight" if 1 - legend_share < _NARROWEST_RIGHT else None
        return Plot(key, title, _svg(figure, bbox))


def _svg(figure: Figure, bbox: str | None = None) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches=bbox)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog: the SVG is inlined in HTML


def _mark_faults(ax: Axes, report: RunReport, origin: float) -> None:
    labelled: set[str] = set()

    def once(label: str) -> str:
        if label in labelled:
            return "_nolegend_"
        labelled.add(label)
        return label

    method = report.method_window
    for fault in report.faults:
        start = float(fault.injected_at) - origin
        end = fault.reverted_at or (method[1] if method else None)
        end = float(end) - origin if end is not None else start + 1
        ax.axvspan(start, end, color=_FAULT, alpha=0.12, label=once("fault window"))
        if fault.time_to_detect_s is not None:
            at = start + float(fault.time_to_detect_s)
            ax.axvline(at, color=_DETECT, linestyle="--", linewidth=1.2, label=once("detected"))
        if fault.recovered_at is not None:
            at = float(fault.recovered_at) - origin
            ax.axvline(at, color=_RECOVER, linestyle="--", linewidth=1.2, label=once("recovered"))
    if method and not report.faults:
        ax.axvspan(
            method[0] - origin, method[1] - origin, color=_FAULT, alpha=0.08, label=once("method")
        )


def _step_seconds(n: int, max_points: int = MAX_POINTS) -> int:
    return max(1, -(-n // max_points))


def _step_note(seconds: int, side: str) -> str:
    if seconds == 1:
        return ""
    return f"; one step per {seconds} s, drawn at its {side} second"


def _step(
    ax: Axes,
    x: np.ndarray,
    y: np.ndarray,
    label: str,
    worst: Literal["low", "high"],
    **style: object,
) -> None:
    steps = envelope(x, y)
    line = steps.low if worst == "low" else steps.high
    # A second is drawn as a stair; a step of several seconds is narrower than a point of
    # the figure, and a plain line draws it with half the SVG.
    drawstyle = "steps-post" if steps.seconds == 1 else "default"
    ax.plot(steps.x, line, drawstyle=drawstyle, linewidth=1.0, label=label, **style)


def _throughput(ax: Axes, series: SliSeries, x: np.ndarray, specs: list[dict]) -> None:
    # Successful and failed answers apart (same colour, failed dashed): a fast 502 outage
    # is no throughput at all.
    shown = [
        (name, endpoint, f"C{k % 10}")
        for k, (name, endpoint) in enumerate(series.endpoints.items())
    ]
    if any(s.get("sli") == "throughput" and not s.get("endpoint") for s in specs):
        shown.append((ALL_ENDPOINTS, series.total, "black"))
    for name, endpoint, colour in shown:
        _step(ax, x, endpoint.completed - endpoint.failures, name, "low", color=colour)
        if endpoint.failures.any():
            _step(ax, x, endpoint.failures, f"{name} failed", "high", color=colour, linestyle="--")
    for spec in specs:
        if spec.get("sli") == "throughput":
            counted = "answered" if spec.get("count") == "all" else "successful"
            label = f"SLO {spec['name']}: ≥ {spec['min_rps']:g} {counted}/s"
            _threshold(ax, float(spec["min_rps"]), label)
    ax.set_ylabel("req/s")
    ax.set_ylim(bottom=0)


def _errors(ax: Axes, series: SliSeries, x: np.ndarray, specs: list[dict]) -> None:
    for name, endpoint in series.endpoints.items():
        _step(ax, x, endpoint.error_rate(), name, "high")
    for spec in specs:
        if spec.get("sli") == "availability":
            limit = 100.0 - float(spec["objective"])
            _threshold(ax, limit, f"SLO {spec['name']}: ≤ {limit:.3g} % errors")
    ax.set_ylabel("% failed")
    ax.set_ylim(bottom=0)


def _latency(
    ax: Axes, selected: EndpointSeries, endpoint: str | None, x: np.ndarray, specs: list[dict]
) -> None:
    styles = {50.0: ("#1f77b4", "-"), 95.0: ("#ff7f0e", "-"), 99.0: ("#d62728", "-")}
    for percentile, values in selected.percentiles.items():
        if percentile not in styles and not _slo_percentile(specs, endpoint, percentile):
            continue
        colour, line = styles.get(percentile, ("#8c564b", "-."))
        _step(ax, x, values, f"p{percentile:g}", "high", color=colour, linestyle=line)
    for spec in specs:
        if spec.get("sli") == "latency" and spec.get("endpoint") == endpoint:
            label = f"SLO {spec['name']}: p{spec['percentile']:g} ≤ {spec['threshold_ms']:g} ms"
            _threshold(ax, float(spec["threshold_ms"]), label)
    finite = np.concatenate([v[np.isfinite(v)] for v in selected.percentiles.values()] or [[]])
    if finite.size and finite.max() / max(finite.min(), 1e-3) > 50:
        ax.set_yscale("log")
    ax.set_ylabel("ms")


def _slo_percentile(specs: list[dict], endpoint: str | None, percentile: float) -> bool:
    return any(
        s.get("sli") == "latency"
        and s.get("endpoint") == endpoint
        and float(s.get("percentile", -1)) == percentile
        for s in specs
    )


def _threshold(ax: Axes, value: float, label: str) -> None:
    ax.axhline(value, color=_SLO, linestyle=":", linewidth=1.5, label=label)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "all"


def figure_ids(plots: Sequence[Plot]) -> Mapping[str, str]:
    """Plot keys and titles (what the HTML report lists)."""
    return {plot.key: plot.title for plot in plots}
