"""The HTML report: one self-contained file (inline CSS and SVG, no script or font fetched).

Written for someone who is not a chaos engineer: the hypothesis and what happened in plain
words first, then the verdict and score with its breakdown, the findings with what to do,
and the plots.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

from jinja2 import Environment, PackageLoader

from inoculate.model.summary import RECOVERY_NOT_MEASURED
from inoculate.reports.model import RunReport
from inoculate.reports.plots import Plot, run_plots, trend_plot
from inoculate.reports.suite import SuiteReport

__all__ = ["PlainWords", "plain_words", "run_html", "suite_html"]


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("inoculate.reports", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@cache
def _css() -> str:
    return (
        resources.files("inoculate.reports").joinpath("templates", "style.css").read_text("utf-8")
    )


def _clock(at: float | None) -> str:
    return "" if at is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


@dataclass(frozen=True)
class PlainWords:
    """The run told in three sentences (and the SLOs as a list)."""

    expected: str
    slos: tuple[str, ...]
    did: str
    happened: str


def plain_words(report: RunReport) -> PlainWords:
    """What we expected, what we did and what happened, in plain words."""
    hypothesis = report.hypothesis_title
    slos = tuple(view.words for view in report.slos)
    if slos:
        expected = (
            f"{hypothesis or 'The system meets its SLOs'}, before, during and after the fault:"
        )
    elif hypothesis:
        probes = sorted({p["name"] for p in report.probes})
        checks = f" (checked by {', '.join(probes)})" if probes else ""
        expected = f"{hypothesis}{checks}, before and after the fault."
    else:
        expected = (
            "The experiment declares no steady-state hypothesis: only its actions are judged."
        )
    return PlainWords(expected, slos, _did(report), _happened(report))


def _did(report: RunReport) -> str:
    description = str(report.run.experiment.get("description") or "").strip()
    faults = []
    for fault in report.faults:
        text = str(fault.description or fault.kind)
        if fault.reverted_at is not None:
            lasted = float(fault.reverted_at) - float(fault.injected_at)
            text += f", reverted {lasted:.1f} s later"
        faults.append(text)
    if faults:
        did = "Injected " + "; ".join(faults) + "."
    else:
        actions = [a["name"] for a in report.activities if a["phase"] == "method"]
        did = ("Ran " + ", ".join(actions) + ".") if actions else "No action ran."
    return f"{description} {did}".strip()


def _happened(report: RunReport) -> str:
    status = report.run.status
    if status == "passed":
        text = "The hypothesis held: the system stayed within its objectives through the fault."
    elif status == "failed":
        text = "The hypothesis did not hold."
    else:
        text = f"The run was {status} before it finished."
    for fault in report.faults:
        if fault.time_to_detect_s is None:
            continue
        text += (
            f" The first SLO breach was seen {float(fault.time_to_detect_s):.1f} s after "
            f"{fault.description or 'the fault'}"
        )
        if fault.time_to_recover_s is not None:
            after = (
                "after the rollback"
                if fault.recovered_by == "rollback"
                else "after the fault, before any rollback (the system healed itself)"
            )
            text += (
                f"; the SLIs were back within objective {float(fault.time_to_recover_s):.1f} s "
                f"{after}."
            )
        elif fault.recovery_state == "not measured":
            text += f"; {RECOVERY_NOT_MEASURED}."
        else:
            text += "; the SLIs were not back within objective when the run ended."
    return text


def run_html(report: RunReport, links: Mapping[str, str] | None = None) -> str:
    """The HTML report of one run."""
    plots = run_plots(report)
    scored = [p for p in report.trend if p.score is not None]
    trend: Plot | None = None
    if len(scored) >= 2:
        trend = trend_plot(report.trend, "trend", f"Score of the last {len(scored)} runs on record")
    return (
        _environment()
        .get_template("run.html.j2")
        .render(
            report=report,
            words=plain_words(report),
            plots=plots,
            trend=trend,
            css=_css(),
            links=dict(links or {}),
            started=_clock(report.run.started_at),
            generated=_clock(report.generated_at),
        )
    )


def suite_html(suite: SuiteReport, links: Mapping[str, str] | None = None) -> str:
    """The HTML report of a suite, linking each run's report, with score trends."""
    plots = []
    if len(suite.trend) >= 2:
        points = [
            _TrendLike(p.suite_id, p.at, p.score, "passed" if p.passed else "failed")
            for p in suite.trend
        ]
        plots.append(
            trend_plot(points, "suite-trend", "Suite score, gate after gate", "gate failed")  # type: ignore[arg-type]
        )
    for number, entry in enumerate(suite.entries):
        scored = [p for p in entry.report.trend if p.score is not None]
        if len(scored) >= 2:
            plots.append(
                trend_plot(
                    entry.report.trend, f"trend-{number}", f"{entry.report.title}: score trend"
                )
            )
    heading = "inoculate gate" if suite.gate is not None else "inoculate suite report"
    return (
        _environment()
        .get_template("suite.html.j2")
        .render(
            suite=suite,
            heading=heading,
            plots=plots,
            css=_css(),
            links=dict(links or {}),
            generated=_clock(suite.generated_at),
        )
    )


@dataclass(frozen=True)
class _TrendLike:
    run_id: str
    at: float
    score: float | None
    status: str
