"""The verdict rules: from what a run recorded to its status and the reasons for it.

One set of rules for every run, whether the session judged it live or a report judges a
plain Chaos Toolkit journal afterwards. chaoslib 1.44 calls a run ``completed`` after a
failed before-state or a failed action; here both fail it.

In order: a run that could not set up is ``aborted``; a run stopped by a signal or an abort
policy is ``interrupted`` / ``aborted`` (its other reasons follow the first); otherwise any
reason fails it — before-state not met, an action failed, an SLO breached during the method,
no SLI second inside the method (nothing measured), after-state not met, a rollback
failed, a fault still injected or not restored — and none passes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from inoculate.model.status import RunStatus
from inoculate.model.summary import SloSummary, value_text

__all__ = ["VerdictFacts", "chaoslib_interruption", "judge"]


@dataclass(frozen=True)
class VerdictFacts:
    """What the verdict depends on."""

    hypothesis_before: bool | None
    hypothesis_after: bool | None
    failed_activities: Sequence[str] = ()
    failed_rollbacks: Sequence[str] = ()
    faults_left: Sequence[str] = ()
    slos: Sequence[SloSummary] = ()
    interruption: str | None = None
    setup_error: str | None = None
    journal_status: str | None = None
    unmet_before: Sequence[str] = ()
    unmet_after: Sequence[str] = ()
    faults_not_restored: Sequence[str] = ()
    method_unmeasured: str | None = None


def judge(facts: VerdictFacts) -> tuple[RunStatus, list[str]]:
    """Return the run's status and the reasons for it, most important first."""
    if facts.setup_error:
        return RunStatus.ABORTED, [facts.setup_error]
    reasons: list[str] = []
    if facts.hypothesis_before is False:
        reasons.append(
            "steady state before the method was not met: the method was skipped"
            + _naming(facts.unmet_before)
        )
    reasons += [f"action failed: {name}" for name in facts.failed_activities]
    reasons += [_breach_reason(slo) for slo in facts.slos if slo.breached_during_method]
    if facts.method_unmeasured:
        reasons.append(f"not measured: {facts.method_unmeasured}")
    if facts.hypothesis_after is False:
        reasons.append("steady state after the method was not met" + _naming(facts.unmet_after))
    reasons += [f"rollback failed: {name}" for name in facts.failed_rollbacks]
    reasons += [f"fault still injected: {fault}" for fault in facts.faults_left]
    reasons += [f"fault not restored after the rollbacks: {f}" for f in facts.faults_not_restored]
    if facts.interruption:
        aborted = facts.interruption.startswith("aborted")
        status = RunStatus.ABORTED if aborted else RunStatus.INTERRUPTED
        return status, [facts.interruption, *reasons]
    if not reasons and facts.journal_status == "failed":
        reasons.append("the Chaos Toolkit journal says failed")
    return (RunStatus.FAILED if reasons else RunStatus.PASSED), reasons


def chaoslib_interruption(journal_status: object) -> str | None:
    """The interruption a journal's own status records: chaoslib's ``interrupted`` or
    ``aborted``, or ``running`` — a journal inoculate wrote mid-run, whose run never
    finished (the runner was killed)."""
    if journal_status in ("interrupted", "aborted"):
        return f"{journal_status} by chaoslib"
    if journal_status == "running":
        return "interrupted: the run never finished (its journal was last written mid-run)"
    return None


def _naming(unmet: Sequence[str]) -> str:
    return f" ({'; '.join(unmet)})" if unmet else ""


def _breach_reason(slo: SloSummary) -> str:
    first = slo.first_breach
    if first is None:
        return f"SLO {slo.name} breached during the method"
    return (
        f"SLO {slo.name} breached during the method: {first.value_text} "
        f"(objective {first.comparison} {value_text(first.objective, first.unit)}) "
        f"at {_clock(first.seen_at)} (+{first.after_method_start_s}s)"
    )


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S UTC")
