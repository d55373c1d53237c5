"""Markdown reports, for pull-request comments and CI step summaries (GitHub-flavoured)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from inoculate.model.summary import (
    NO_SLO_TO_DETECT,
    RECOVERY_NOT_BACK,
    RECOVERY_NOT_MEASURED,
    FaultSummary,
)
from inoculate.reports.model import RunReport
from inoculate.reports.suite import SuiteEntry, SuiteReport

__all__ = ["run_markdown", "suite_markdown"]

_MARK = {"passed": "✅", "failed": "❌"}


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _number(value: float | None, unit: str = "", digits: str = ".4g") -> str:
    return "-" if value is None else f"{value:{digits}}{unit}"


def run_markdown(report: RunReport, links: Mapping[str, str] | None = None) -> str:
    """The Markdown report of one run."""
    run, score = report.run, report.score
    mark = _MARK.get(run.status, "⚠️")
    lines = [
        f"## {mark} {run.status.upper()}: {run.title} (score {score.value:g}/100)",
        "",
    ]
    hypothesis = report.hypothesis_title or "no steady-state hypothesis declared"
    lines.append(f"**Hypothesis:** {hypothesis}.")
    for view in report.slos:
        lines.append(f"- {view.words}")
    if run.summary.load is not None:
        lines.append(f"\n**Load:** {run.summary.load.description}.")
    if report.faults:
        lines.append("\n**Faults:**")
        lines += [
            f"- {fault.description or fault.kind}: {_times(fault, bool(run.summary.slos))}"
            for fault in report.faults
        ]
    reasons = list(run.summary.reasons)
    if reasons:
        lines.append(f"\n**Verdict:** {run.status}, because:")
        lines += [f"- {reason}" for reason in reasons]
    lines += ["", "### Score", ""]
    lines += _table(
        ("component", "points", "of", "detail"),
        (
            (c.label, f"{c.points:.1f}", f"{c.max_points:.1f}", c.detail)
            if c.measured
            else (c.label, "-", "-", _unmeasured(c.detail))
            for c in score.components
        ),
    )
    if report.slos:
        lines += ["", "### SLOs in the fault window", ""]
        lines += _table(
            ("SLO", "objective", "worst", "budget used", "breached", "met", "measured by"),
            (
                (
                    v.outcome.name,
                    f"{v.outcome.comparison} {v.outcome.objective:g}{v.outcome.unit}",
                    _number(v.outcome.worst, v.outcome.unit),
                    _number(v.outcome.budget_consumed, "x", ".2f"),
                    f"{v.outcome.breach_seconds}/{v.outcome.window_seconds} s",
                    "yes" if v.met else "**no**",
                    v.outcome.measured_by,
                )
                for v in report.slos
            ),
        )
    lines += _findings(report)
    if score.unmeasured:
        lines += ["", "Not measured: " + "; ".join(score.unmeasured) + "."]
    if report.trend:
        trend = " → ".join(_number(p.score, "", "g") for p in report.trend[-10:])
        lines += ["", f"Score trend (oldest → newest): {trend}"]
    if links:
        lines += ["", " · ".join(f"[{fmt}]({path})" for fmt, path in links.items())]
    return "\n".join(lines) + "\n"


def _unmeasured(detail: str) -> str:
    """A component's detail as "not measured: ..." unless it already says why not."""
    return detail if detail.startswith("not ") else f"not measured: {detail}"


def _findings(report: RunReport) -> list[str]:
    if not report.score.findings:
        return ["", "No finding: every point was kept."]
    lines = ["", "### Findings", ""]
    for number, finding in enumerate(report.score.findings, start=1):
        lost = f" (-{finding.points_lost:g} points)" if finding.points_lost else ""
        lines.append(f"{number}. **{finding.title}**{lost}: {finding.evidence}.")
        lines.append(f"   *Recommended:* {finding.remediation}.")
    return lines


def _times(fault: FaultSummary, slos_declared: bool) -> str:
    detect, back = fault.time_to_detect_s, fault.time_to_recover_s
    if detect is None:
        return "no SLO breach seen" if slos_declared else NO_SLO_TO_DETECT
    text = f"detected in {float(detect):.1f} s"  # type: ignore[arg-type]
    if fault.recovery_state == "not measured":
        return f"{text}, {RECOVERY_NOT_MEASURED}"
    if back is None:
        return f"{text}, {RECOVERY_NOT_BACK}"
    objective = fault.recovery_objective_s
    goal = f", objective {float(objective):g} s" if objective is not None else ""  # type: ignore[arg-type]
    return f"{text}, recovered in {float(back):.1f} s ({fault.recovered_by}{goal})"  # type: ignore[arg-type]


def _entry_mark(entry: SuiteEntry) -> str:
    if entry.expected_to_fail:
        return "✅" if entry.passed else "❌"
    return _MARK.get(entry.report.run.status, "⚠️")


def suite_markdown(suite: SuiteReport) -> str:
    """The Markdown report of a suite (and of the gate), with each run's top findings."""
    gate = suite.gate
    mark = "✅" if suite.passed else "❌"
    what = "inoculate gate" if gate is not None else "inoculate suite"
    verdict = "passed" if suite.passed else "failed"
    lines = [f"## {mark} {what} {verdict}: suite score {suite.score:g}/100", ""]
    if suite.score_caveat:
        lines += [f"The suite score: {suite.score_caveat}.", ""]
    lines += _table(
        ("experiment", "verdict", "score", "weight", "baseline", "report"),
        (
            (
                e.report.title,
                f"{_entry_mark(e)} {e.verdict_text}",
                f"{e.report.score.value:g}",
                f"{e.weight:g}",
                _number(e.baseline, "", "g"),
                f"[html]({e.links['html']})" if "html" in e.links else "-",
            )
            for e in suite.entries
        ),
    )
    if gate is not None:
        minimum = "none" if gate.min_score is None else f"{gate.min_score:g}"
        lines += [
            "",
            f"Gate: minimum score {minimum}; regression tolerance {gate.tolerance:g} points "
            f"against {gate.baseline}.",
        ]
        lines += [f"- {reason}" for reason in gate.reasons]
    for entry in suite.entries:
        top = [f for f in entry.report.score.findings if f.points_lost > 0][:3]
        if top:
            lines += ["", f"**{entry.report.title}**: top findings"]
            lines += [f"- {f.title} (-{f.points_lost:g}): {f.remediation}" for f in top]
    if suite.trend:
        trend = " → ".join(f"{p.score:g}" for p in suite.trend[-10:])
        lines += ["", f"Suite score trend (oldest → newest): {trend}"]
    return "\n".join(lines) + "\n"
