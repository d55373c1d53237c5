"""Findings: the evidence for each point lost and what to do about it.

Advice is chosen by what was injected (its kind, ``process:kill``) and which SLI suffered, from a
small registry (:data:`ADVICE`); a fault module of our own or of a team adds its entries
with :func:`register_advice` and never touches this module's logic.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from inoculate.model.kinds import normalize_kind
from inoculate.reports.findings import Finding
from inoculate.reports.outcomes import FaultOutcome, SloOutcome
from inoculate.steady_state.slo import NEVER_CALLED

__all__ = ["ADVICE", "advice_for", "register_advice"]

# fault kind → SLI → advice; "{target}" is the fault's target (service or pattern).
ADVICE: dict[str, dict[str, str]] = {
    "process:kill": {
        "availability": "add a replica of {target} or shorten its restart delay; add a "
        "readiness check so callers only reach a {target} that is ready, and retry on "
        "another replica",
        "latency": "retry on another replica of {target} with a short timeout instead of "
        "waiting for it to restart; warm its caches before it takes traffic",
        "throughput": "run a second replica of {target} so capacity survives the loss of one",
    },
    "process:restart": {
        "availability": "drain {target} before it restarts and add a readiness check so "
        "traffic waits for a healthy instance",
        "latency": "keep a warm replica of {target} while the other restarts",
        "throughput": "restart replicas of {target} one at a time (rolling restart)",
    },
    "process:freeze": {
        "availability": "set a client timeout on calls to {target} and a fallback (cached "
        "answer or a durable queue) when it does not answer",
        "latency": "set a timeout on calls to {target} below the latency objective and a "
        "circuit breaker that fails fast while it hangs",
        "throughput": "bound the requests in flight to {target} (timeouts, bulkhead) so "
        "a hung {target} does not stall every caller",
    },
}
DEFAULT_ADVICE = {
    "availability": "add redundancy for {target} and retries with backoff in its callers",
    "latency": "set timeouts below the latency objective and a circuit breaker for {target}",
    "throughput": "add capacity for {target} and bound the work queued behind it",
}
_SYMPTOM = {"availability": "failing", "latency": "slow", "throughput": "below its floor"}


def register_advice(kind: str, advice: Mapping[str, str]) -> None:
    """Add or replace the advice for a fault kind (``family:fault``), per SLI."""
    ADVICE[normalize_kind(kind)] = dict(advice)


def advice_for(kind: str | None, sli: str, target: str | None) -> str:
    """The suggested remediation for an SLI that suffered from a fault of ``kind``."""
    table = ADVICE.get(normalize_kind(kind or ""), DEFAULT_ADVICE)
    text = table.get(sli) or DEFAULT_ADVICE.get(sli, "make {target} tolerate this fault")
    return text.format(target=target or "the faulty dependency")


def _finding(component: str, title: str, evidence: str, advice: str, **data: object) -> Finding:
    return Finding(component, 0.0, title, evidence, advice, dict(data))


def _clock(at: float | None) -> str:
    if at is None:
        return ""
    return time.strftime(" at %H:%M:%S UTC", time.gmtime(at))


def _fault_verb(kind: str | None) -> str:
    return (kind or "fault").rsplit(":", 1)[-1]


def slo_finding(slo: SloOutcome) -> Finding:
    """Points lost on one SLO: how far it went, when, and the likely fix."""
    where = (
        "read from Prometheus" if slo.source == "prometheus" else slo.endpoint or "all endpoints"
    )
    target = slo.target or where
    symptom = _SYMPTOM.get(slo.sli, "out of objective")
    if slo.after_fault_s is not None:
        title = f"{target} {symptom} {slo.after_fault_s:.1f} s after {_fault_verb(slo.fault_kind)}"
    else:
        title = f"{slo.name} ({where}) {symptom} during the fault window"
    parts = [f"SLO {slo.name} ({where}, objective {slo.comparison} {slo.objective:g}{slo.unit})"]
    if slo.first_breach_text:
        parts.append(f"first breached with {slo.first_breach_text}{_clock(slo.first_breach_at)}")
    if slo.fault:
        parts.append(f"after {slo.fault}")
    if slo.worst is not None:
        # The worst *SLO-window* value: a short outage inside a long window can spend the
        # fault window's error budget while every window still meets the objective.
        window = f"{slo.slo_window_s} s-window " if slo.slo_window_s else ""
        parts.append(f"worst {window}value {slo.worst:.4g}{slo.unit}")
    if slo.breach_seconds:
        parts.append(f"breached {slo.breach_seconds} s of the {slo.window_seconds} s fault window")
    if slo.budget_consumed is not None and slo.budget_consumed > 1:
        detail = f" ({slo.budget_text})" if slo.budget_text else ""
        parts.append(f"error budget consumed {slo.budget_consumed:.1f}x the allowed{detail}")
    return _finding(
        "slo",
        title,
        "; ".join(parts),
        advice_for(slo.fault_kind, slo.sli, slo.target),
        slo=slo.name,
        at=slo.first_breach_at,
        after_fault_s=slo.after_fault_s,
        worst=slo.worst,
        objective=slo.objective,
        budget_consumed=slo.budget_consumed,
        breach_seconds=slo.breach_seconds,
    )


def recovery_finding(fault: FaultOutcome) -> Finding:
    """Points lost on recovery: never back, or back later than the objective."""
    target = fault.target or fault.description
    breached = ", ".join(fault.detected_by) or "an SLO"
    detect = (
        f"{breached} breached {fault.time_to_detect_s:.1f} s after {fault.description}"
        if fault.time_to_detect_s is not None
        else f"{breached} breached after {fault.description}"
    )
    if not fault.recovered or fault.time_to_recover_s is None:
        title = f"{target} never recovered within objective"
        evidence = f"{detect}; the SLIs did not come back within objective before the run ended"
        advice = (
            f"check that the rollback really restores {target}; add a readiness check and "
            "give the system time to settle (settle_s) before the after-state"
        )
    else:
        objective = fault.recovery_objective_s or 0.0
        title = (
            f"{target} took {fault.time_to_recover_s:.1f} s to recover (objective {objective:g} s)"
        )
        evidence = (
            f"{detect}; SLIs back {fault.time_to_recover_s:.1f} s after the "
            f"{fault.recovered_by or 'fault'}, objective {objective:g} s"
        )
        advice = (
            f"shorten the restart delay and health-check interval of {target}; make the "
            "rollback wait until it is ready; keep a replica serving meanwhile"
        )
    return _finding(
        "recovery",
        title,
        evidence,
        advice,
        fault=fault.description,
        time_to_detect_s=fault.time_to_detect_s,
        time_to_recover_s=fault.time_to_recover_s,
        recovery_objective_s=fault.recovery_objective_s,
    )


def after_finding(after: bool | None) -> Finding:
    """The steady state after the fault was not met (or never checked)."""
    if after is None:
        return _finding(
            "after",
            "steady state after the fault was never checked",
            "the run ended (interrupted or aborted) before the after-state probes ran",
            "rerun the experiment; if it keeps stopping early, fix what interrupts it",
        )
    return _finding(
        "after",
        "the system did not return to its steady state",
        "the steady-state hypothesis failed after the rollbacks",
        "look for state the fault left behind (stuck circuit breakers, full queues, stale "
        "caches, a replica that never came back) and give recovery time (settle_s)",
    )


def faults_left_finding(faults: Sequence[str]) -> Finding:
    """A fault was still injected after every rollback and the safety net."""
    return _finding(
        "rollbacks",
        "a fault was left injected",
        "still injected after the rollbacks: " + ", ".join(faults),
        "run `inoculate recover` now; then add or fix the rollback that reverts this fault",
        faults=list(faults),
    )


def failed_rollback_finding(name: str) -> Finding:
    """A rollback activity failed."""
    return _finding(
        "rollbacks",
        f"rollback {name} failed",
        f"the rollback activity {name} ended with status failed (see the journal)",
        "fix the rollback; until then check the system by hand and run `inoculate recover`",
        rollback=name,
    )


def not_restored_finding(faults: Sequence[str]) -> Finding:
    """After the rollbacks, a fault's target was checked and was not back."""
    return _finding(
        "rollbacks",
        f"{len(faults)} fault(s) not restored after the rollbacks",
        "after the rollbacks, the target was checked and was not as before: " + "; ".join(faults),
        "restore it by hand now; then make the rollback bring it back (for a process no "
        "supervisor runs, declare restart_command)",
        faults=list(faults),
    )


def safety_net_finding(name: str) -> Finding:
    """A fault was reverted by inoculate's safety net, not by any rollback."""
    return _finding(
        "rollbacks",
        f"no rollback reverted {name}",
        f"inoculate's safety net reverted {name} after the rollbacks",
        "declare a rollback for this fault so that a plain `chaos run` undoes it too",
        fault=name,
    )


def never_finished(faults_left: Sequence[str] = ()) -> Finding:
    """The runner was killed before it judged the run: nothing it measured was judged."""
    left = f"; still injected when this report was written: {', '.join(faults_left)}"
    return _finding(
        "run",
        "the run never finished",
        "its runner was killed before it judged the run (no summary.json), so no SLO, "
        "recovery or rollback was judged" + (left if faults_left else ""),
        "run `inoculate recover` to revert what the run left (a report written after it "
        "shows what is still injected), then run the experiment again; the score stays 0",
    )


def precondition_failed(before: bool | None, reasons: Sequence[str] = ()) -> Finding:
    """The steady state before the fault was not met: the experiment tested nothing."""
    evidence = (
        "the steady-state hypothesis failed before any fault was injected"
        if before is False
        else "the run stopped before the steady state before the fault was checked"
    )
    never_called = [r for r in reasons if NEVER_CALLED in r]
    if never_called:
        # A misspelt endpoint is not a weak system: lowering the load would not help.
        return _finding(
            "before",
            "an SLO names an endpoint the load never called",
            f"{evidence}: {never_called[0]}",
            "make the SLO's `endpoint` the name of a request the locustfile makes (Locust "
            "names a request `METHOD path`, or the `name=` it was given); the score stays 0 "
            "until then",
        )
    return _finding(
        "before",
        "steady state before the fault was not met (precondition)",
        evidence,
        "make the system healthy under this load first (check the SLOs against a "
        "fault-free run, or lower the load); the score stays 0 until then",
    )


def failed_action_finding(name: str) -> Finding:
    """A method action failed: the fault may not have been injected as designed."""
    return _finding(
        "method",
        f"action {name} failed",
        f"the method action {name} ended with status failed: the fault may not have been "
        "injected as designed, so the run is failed and not scored",
        "fix the action (see its error in the journal) and rerun; the score stays 0 until then",
        action=name,
    )


def interruption_finding(reason: str) -> Finding:
    """The run was interrupted or aborted."""
    return _finding(
        "run",
        "the run was interrupted",
        reason,
        "rerun the experiment to completion; an abort policy stops at the first breach",
    )
