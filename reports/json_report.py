"""The JSON report: a documented, versioned schema (``reports/schema/*.schema.json``).

``schema`` names the document type and ``schema_version`` its version; a reader checks
both. Version 1 adds fields only in a backwards-compatible way; removing or changing the
meaning of a field bumps the version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from inoculate.model.summary import FaultSummary, LoadSummary
from inoculate.reports.model import RunReport, TrendPoint
from inoculate.reports.suite import SuiteReport

__all__ = [
    "RUN_SCHEMA",
    "SCHEMA_VERSION",
    "SUITE_SCHEMA",
    "load_schema",
    "run_document",
    "suite_document",
]

SCHEMA_VERSION = 1
RUN_SCHEMA = "inoculate/run-report"
SUITE_SCHEMA = "inoculate/suite-report"


def load_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``run-report`` or ``suite-report``."""
    name = f"{kind}-v{SCHEMA_VERSION}.schema.json"
    text = resources.files("inoculate.reports").joinpath("schema", name).read_text(encoding="utf-8")
    return json.loads(text)


def _iso(at: float | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, UTC).isoformat()


def run_document(report: RunReport, files: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The JSON report of one run."""
    run, score = report.run, report.score
    return {
        "schema": RUN_SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "generated_at": _iso(report.generated_at),
        "experiment": {
            "title": run.title,
            "description": str(run.experiment.get("description") or ""),
            "hypothesis": report.hypothesis_title,
            "tags": [str(tag) for tag in run.experiment.get("tags") or []],
        },
        "run": {
            "id": run.run_id,
            "source": run.kind,
            "directory": str(run.directory),
            "started_at": _iso(run.started_at),
            "ended_at": _iso(run.ended_at),
        },
        "verdict": {
            "status": run.status,
            "exit_code": run.summary.exit_code,
            "reasons": list(run.summary.reasons),
        },
        "hypothesis": {
            "declared": report.score_input.has_hypothesis,
            "before": report.score_input.hypothesis_before,
            "after": report.score_input.hypothesis_after,
        },
        "score": {
            "value": score.value,
            "precondition_met": score.precondition_met,
            "components": [
                {
                    "key": c.key,
                    "label": c.label,
                    "weight": c.weight,
                    "measured": c.measured,
                    "credit": None if c.credit is None else round(c.credit, 4),
                    "points": round(c.points, 2),
                    "max_points": round(c.max_points, 2),
                    "detail": c.detail,
                }
                for c in score.components
            ],
            "unmeasured": list(score.unmeasured),
        },
        "findings": [finding.to_json() for finding in score.findings],
        "slos": [_slo(view) for view in report.slos],
        "faults": [_fault(fault) for fault in report.faults],
        "trend": [_point(point) for point in report.trend],
        "runbook": report.summary.runbook,
        "load": _load(report.summary.load),
        "files": dict(files or {}),
    }


def _slo(view: Any) -> dict[str, Any]:
    outcome = view.outcome
    first = None
    if outcome.first_breach_at is not None:
        first = {
            "at": _iso(outcome.first_breach_at),
            "value_text": outcome.first_breach_text,
            "after_fault_s": outcome.after_fault_s,
            "fault": outcome.fault,
        }
    return {
        "name": outcome.name,
        "sli": outcome.sli,
        "endpoint": outcome.endpoint,
        "objective": outcome.objective,
        "comparison": outcome.comparison,
        "unit": outcome.unit,
        "in_words": view.words,
        "met": view.met,
        "credit": round(view.credit, 4),
        "breach_seconds": outcome.breach_seconds,
        "fault_window_seconds": outcome.window_seconds,
        "budget_consumed": outcome.budget_consumed,
        "worst": outcome.worst,
        "first_breach": first,
        "load_model": outcome.load_model,
        "source": outcome.source,
        "burn_rate_before": outcome.burn_rate_before,
        "burn_before_window_s": outcome.burn_before_window_s,
        "burn_rate_after": outcome.burn_rate_after,
        "burn_after_window_s": outcome.burn_after_window_s,
    }


def _load(load: LoadSummary | None) -> dict[str, Any] | None:
    if load is None:
        return None
    return {**load.model_dump(mode="json"), "description": load.description}


def _fault(fault: FaultSummary) -> dict[str, Any]:
    keys = (
        "description",
        "kind",
        "fault",
        "target",
        "detected",
        "time_to_detect_s",
        "detected_by",
        "recovered",
        "recovered_by",
        "time_to_recover_s",
        "recovery_objective_s",
        "recovery_objective_met",
    )
    document = {key: getattr(fault, key) for key in keys}
    document["injected_at"] = _iso(fault.injected_at)
    document["reverted_at"] = _iso(fault.reverted_at)
    return document


def _point(point: TrendPoint) -> dict[str, Any]:
    return {
        "run_id": point.run_id,
        "at": _iso(point.at),
        "score": point.score,
        "status": point.status,
    }


def suite_document(suite: SuiteReport) -> dict[str, Any]:
    """The JSON report of a suite (and of the gate, when there was one)."""
    gate = None
    if suite.gate is not None:
        gate = {
            "passed": suite.gate.passed,
            "reasons": list(suite.gate.reasons),
            "min_score": suite.gate.min_score,
            "tolerance": suite.gate.tolerance,
            "baseline": suite.gate.baseline,
            "regressions": list(suite.gate.regressions),
        }
    return {
        "schema": SUITE_SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "generated_at": _iso(suite.generated_at),
        "suite_id": suite.suite_id,
        "score": suite.score,
        "passed": suite.passed,
        "gate": gate,
        "experiments": [
            {
                "title": entry.report.title,
                "run_id": entry.report.run.run_id,
                "status": entry.report.run.status,
                "score": entry.report.score.value,
                "weight": entry.weight,
                "baseline_score": entry.baseline,
                "baseline_run": entry.baseline_run,
                "reports": dict(entry.links),
            }
            for entry in suite.entries
        ],
        "trend": [
            {"suite_id": p.suite_id, "at": _iso(p.at), "score": p.score, "passed": p.passed}
            for p in suite.trend
        ],
    }
