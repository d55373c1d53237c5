"""Reports: journal + SLI series → score → HTML / Markdown / JUnit / JSON; history; runbooks.

The public API is listed in ``__all__``; modules are imported lazily by the writers so that
``inoculate`` commands that do not write reports never load matplotlib.
"""

from reports.errors import HistoryError, ReportError, ReportInputError, RunbookError
from reports.findings import Finding
from reports.history import History, default_history_path
from reports.model import RunReport, build_run_report
from reports.publish import (
    FORMATS,
    Published,
    parse_formats,
    publish_run,
    write_run_reports,
    write_suite_reports,
)
from reports.runbook import update_runbook
from reports.score import Score, ScoreInput, score_run, suite_score
from reports.suite import GateVerdict, SuiteEntry, SuiteReport, build_suite, judge_gate

__all__ = [
    "FORMATS",
    "Finding",
    "GateVerdict",
    "History",
    "HistoryError",
    "Published",
    "ReportError",
    "ReportInputError",
    "RunReport",
    "RunbookError",
    "Score",
    "ScoreInput",
    "SuiteEntry",
    "SuiteReport",
    "build_run_report",
    "build_suite",
    "default_history_path",
    "judge_gate",
    "parse_formats",
    "publish_run",
    "score_run",
    "suite_score",
    "update_runbook",
    "write_run_reports",
    "write_suite_reports",
]
