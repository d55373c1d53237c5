"""``inoculate canary``: one experiment, run unattended in production under a policy.

In order, and nothing is started or injected until every step has allowed it:

1. **Input.** The policy and the experiment are validated; the experiment must also fit the
   policy: every SLO read from Prometheus, the guards valid on its SLOs, its pauses and
   durations within the maximum duration, and every fault bounded within the blast radius
   (``inoculate.modes.reach``). Any problem is invalid input: exit 2.
2. **Guards**, each a decision with its reason: the allowed windows and freeze dates, the
   kill switch, the error budget left (Prometheus), the lock of the policy's scope, and
   the preflight webhooks, which get the resolved targets. The first that denies skips the
   run: exit 4. A dry run evaluates every one of them, holds nothing and injects nothing.
3. **The run**, holding the lock, with the policy's burn-rate guard, kill switch and
   maximum duration in force: each aborts the run, whose rollbacks revert every fault.

Every step writes the audit log: who, what, when, the policy's hash, the targets, every
guard decision and the outcome, one hash-chained JSON line each (``inoculate.canary.audit``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from inoculate.canary.audit import AuditLog, AuditLogError, policy_hash, who
from inoculate.canary.kill_switch import engaged as kill_switch_engaged
from inoculate.canary.lock import LockUnavailable, ScopeLock, scope_lock
from inoculate.canary.policy import CanaryPolicy
from inoculate.canary.preflight import call_webhooks
from inoculate.canary.windows import why_not_now
from inoculate.experiment.loading import load_document
from inoculate.experiment.spec import InoculateSpec, find_extension
from inoculate.experiment.validation import (
    ValidatedExperiment,
    pydantic_field_error,
    validate_experiment,
)
from inoculate.faults.ledger import ledger_from_configuration
from inoculate.model.errors import (
    ExperimentInvalid,
    FieldError,
    LedgerError,
    LockHeld,
    RunInterrupted,
)
from inoculate.model.layout import LEDGER_CONFIG_KEY
from inoculate.model.secrets import scrub, secret_values
from inoculate.model.status import ExitCode, SliDataStatus
from inoculate.modes.reach import FaultReach, blast_radius_problems, fault_reaches
from inoculate.modes.run import RunOutcome, load_run_variables, run_validated
from inoculate.session.interrupts import SignalLatch
from inoculate.steady_state.guards import budget_left
from inoculate.steady_state.prometheus import PrometheusClient
from inoculate.steady_state.server_side import server_side_slos

__all__ = [
    "CanaryOutcome",
    "CanaryRequest",
    "GuardDecision",
    "least_duration_s",
    "load_policy",
    "run_canary",
]

logger = logging.getLogger("inoculate")


@dataclass(frozen=True)
class GuardDecision:
    """One guard's say on the run."""

    guard: str
    allowed: bool
    reason: str
    # Denied because the canary is set up wrong (a query that matches no series, a target
    # that is not there, a missing key): invalid input, exit 2, not a skip a scheduler
    # counts as fine.
    misconfigured: bool = False

    def record(self) -> dict[str, Any]:
        """A JSON-ready mapping for the audit log."""
        record = {"guard": self.guard, "allowed": self.allowed, "reason": self.reason}
        return {**record, "misconfigured": True} if self.misconfigured else record


@dataclass(frozen=True)
class CanaryRequest:
    """What ``inoculate canary`` was asked to do."""

    experiment: Path
    policy: Path
    audit_log: Path
    lock_dir: Path
    out_dir: Path = Path("runs")
    ledger: Path | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    var_files: Sequence[str] = ()
    dry_run: bool = False


@dataclass(frozen=True)
class CanaryOutcome:
    """How a canary ended: its exit code, every guard decision, the faults' reach, and the
    run when there was one."""

    exit_code: int
    outcome: str  # passed, failed, aborted, interrupted, skipped, dry-run
    decisions: tuple[GuardDecision, ...]
    reaches: tuple[FaultReach, ...]
    run: RunOutcome | None = None
    reason: str | None = None


def load_policy(path: Path) -> CanaryPolicy:
    """Read and validate a policy file; raise :class:`ExperimentInvalid` naming the file,
    each field and what was expected."""
    document = load_document(path, "policy")
    if not isinstance(document, Mapping):
        found = "an empty file" if document is None else f"a {type(document).__name__}"
        expected = "a mapping of scope, windows, max_duration_s, blast_radius, guards ..."
        raise ExperimentInvalid(str(path), [FieldError("", f"expected {expected}, got {found}")],
                                "policy")  # fmt: skip
    try:
        policy = CanaryPolicy.model_validate(document)
    except ValidationError as exc:
        errors = [pydantic_field_error("", error) for error in exc.errors()]
        raise ExperimentInvalid(str(path), errors, "policy") from None
    switch = policy.kill_switch
    if switch.file is not None and not switch.file.is_absolute():
        # Read from the policy's folder, wherever the command runs.
        anchored = switch.model_copy(update={"file": Path(path).resolve().parent / switch.file})
        policy = policy.model_copy(update={"kill_switch": anchored})
    return policy


def run_canary(
    request: CanaryRequest,
    latch: SignalLatch | None = None,
    now: dt.datetime | None = None,
    environ: Mapping[str, str] | None = None,
) -> CanaryOutcome:
    """Check, guard and run one canary (see the module's docstring); every step is audited.

    Raises :class:`ExperimentInvalid` for bad input (audited as refused) and
    :class:`RunInterrupted` for a signal before the run started.
    """
    environ = os.environ if environ is None else environ
    audit = AuditLog(request.audit_log)
    what = {"experiment": str(request.experiment), "policy": str(request.policy)}
    hidden: set[str] = set()
    try:
        policy = load_policy(request.policy)
        what.update(policy_hash=policy_hash(request.policy), scope=policy.scope)
        configuration, secrets = load_run_variables(request.variables, request.var_files)
        validated = validate_experiment(request.experiment, configuration, secrets)
        hidden = secret_values(validated.experiment.get("secrets"), secrets)
        validated = _under_policy(validated, policy)
        reaches = fault_reaches(validated, configuration, secrets)
        _check_reach(validated, reaches, policy)
    except ExperimentInvalid as exc:
        audit.append("refused", **what, reason=str(exc), secrets=hidden)
        raise
    targets = [fault.record() for fault in reaches]
    what["dry_run"] = request.dry_run
    decisions: list[GuardDecision] = []
    lock = _ScopeHold(policy.scope, request.lock_dir, environ)
    try:
        guards = _guards(policy, validated, targets, what, lock, reaches, now, environ, request)
        for decision in guards:
            decisions.append(decision)
            audit.append("guard", **what, **decision.record(), secrets=hidden)
            if not decision.allowed and not request.dry_run:
                break
        denied = [d for d in decisions if not d.allowed]
        wrong = [d for d in denied if d.misconfigured]
        if request.dry_run or denied:
            outcome = "dry-run" if request.dry_run else ("refused" if wrong else "skipped")
            code = ExitCode.INVALID if wrong else ExitCode.SKIPPED if denied else ExitCode.PASSED
            reason = "; ".join(d.reason for d in (wrong or denied)) or None
            audit.append(
                outcome, **what, targets=targets, outcome=outcome, reason=reason, secrets=hidden
            )
            return CanaryOutcome(int(code), outcome, tuple(decisions), tuple(reaches), None, reason)
        audit.append("started", **what, targets=targets, secrets=hidden)
        run = _run_audited(request, validated, configuration, secrets, latch, audit, what, hidden)
    finally:
        lock.release()
    summary = run.summary
    outcome = str(summary.status)
    try:
        audit.append(
            "finished",
            **what,
            outcome=outcome,
            exit_code=run.exit_code,
            run_dir=str(run.run_dir),
            reasons=list(summary.reasons),
            secrets=hidden,
        )
    except AuditLogError as exc:  # the run happened: its verdict stands, and it says so
        logger.error("the canary ran but its outcome is not in the audit log: %s", exc)
    reason = "; ".join(summary.reasons) or None
    return CanaryOutcome(run.exit_code, outcome, tuple(decisions), tuple(reaches), run, reason)


def _run_audited(
    request: CanaryRequest,
    validated: ValidatedExperiment,
    configuration: dict[str, Any],
    secrets: dict[str, Any],
    latch: SignalLatch | None,
    audit: AuditLog,
    what: dict[str, Any],
    hidden: set[str],
) -> RunOutcome:
    try:
        return run_validated(
            validated,
            request.experiment,
            configuration,
            secrets,
            request.out_dir,
            request.ledger,
            latch,
        )
    except RunInterrupted as exc:
        audit.append("interrupted", **what, reason=exc.reason, secrets=hidden)
        raise
    except BaseException as exc:
        audit.append("error", **what, reason=f"{type(exc).__name__}: {exc}", secrets=hidden)
        raise


def _guards(
    policy: CanaryPolicy,
    validated: ValidatedExperiment,
    targets: list[dict[str, Any]],
    what: Mapping[str, Any],
    lock: _ScopeHold,
    reaches: Sequence[FaultReach],
    now: dt.datetime | None,
    environ: Mapping[str, str],
    request: CanaryRequest,
) -> Iterator[GuardDecision]:
    """Each guard's decision in turn; the caller stops at the first denial (not a dry run).
    The lock stays held from its decision on, unless this is a dry run."""
    moment = now or dt.datetime.now(dt.UTC)
    late = why_not_now(policy.windows, moment, policy.max_duration_s)
    yield GuardDecision("window", late is None, late or "inside an allowed window")
    pulled = kill_switch_engaged(policy.kill_switch, environ)
    yield GuardDecision("kill_switch", pulled is None, pulled or _levers(policy))
    yield _ledger_decision(request.ledger)
    yield _targets_decision(reaches)
    yield _budget_decision(validated.spec, policy)
    yield lock.decide(request.dry_run)
    payload = {
        **what,
        "targets": targets,
        "who": who(),
        "max_duration_s": policy.max_duration_s,
    }
    for hook in call_webhooks(policy.preflight, scrub(payload, set()), environ=environ):
        yield GuardDecision(
            f"preflight {hook.webhook}", hook.approved, hook.reason, hook.misconfigured
        )


class _ScopeHold:
    """The policy's scope lock, made when its guard decides (a Kubernetes client that
    cannot be made is that guard's denial, not a crash) and released at the end."""

    def __init__(self, scope: str, lock_dir: Path, environ: Mapping[str, str]) -> None:
        self._args = (scope, lock_dir, environ)
        self.lock: ScopeLock | None = None

    def decide(self, dry_run: bool) -> GuardDecision:
        scope, lock_dir, environ = self._args
        try:
            self.lock = scope_lock(scope, lock_dir, environ=environ)
            self.lock.acquire()
        except (LockHeld, LockUnavailable) as exc:
            self.lock = None
            return GuardDecision("lock", False, str(exc))
        if dry_run:
            self.release()
            return GuardDecision("lock", True, "free (not held: dry run)")
        return GuardDecision("lock", True, f"held by this run ({self.lock.holder})")

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def _budget_decision(spec: InoculateSpec | None, policy: CanaryPolicy) -> GuardDecision:
    assert spec is not None and spec.prometheus is not None  # checked by _under_policy
    least = policy.error_budget.min_remaining_percent
    with PrometheusClient(spec.prometheus) as client:
        found = budget_left(client, server_side_slos(spec.slos), policy.error_budget, time.time())
    short = [f for f in found if f.left is None or f.left < least]
    said = "; ".join(f.sentence for f in (short or found))
    # No series (a misspelt metric or label, a job that is not scraped) is the canary's own
    # mistake; Prometheus down or slow is not.
    wrong = any(f.status in _MISCONFIGURED for f in short)
    reason = f"{said} (the policy's minimum: {least:g} %)"
    if wrong:
        reason += "; check the SLO's queries and scrape jobs against Prometheus"
    return GuardDecision("error_budget", not short, reason, wrong)


_MISCONFIGURED = frozenset({SliDataStatus.NO_SERIES, SliDataStatus.QUERY_ERROR})


def _ledger_decision(ledger: Path | None) -> GuardDecision:
    """A fault still recorded in the ledger (a run killed, a revert that failed) means the
    system may still be hurt: no canary adds another until it is settled."""
    configuration = {LEDGER_CONFIG_KEY: str(ledger)} if ledger is not None else None
    book = ledger_from_configuration(configuration)
    try:
        left = book.outstanding()
    except LedgerError as exc:
        return GuardDecision("ledger", False, f"the fault ledger cannot be read: {exc}", True)
    if not left:
        return GuardDecision("ledger", True, f"no fault outstanding in {book.path}")
    shown = "; ".join(str(record) for record in left[:3])
    more = f" and {len(left) - 3} more" if len(left) > 3 else ""
    return GuardDecision(
        "ledger",
        False,
        f"{len(left)} fault(s) still in the fault ledger {book.path}: {shown}{more}; "
        "run `inoculate recover` and check the system before another canary",
    )


def _targets_decision(reaches: Sequence[FaultReach]) -> GuardDecision:
    """Every fault has something to hit now and would not refuse, and what it kills can be
    started again: otherwise the run would fail, or leave a fault it cannot undo."""
    problems = [
        f"{fault.where} ({fault.activity}): {fault.reach.problem}"
        for fault in reaches
        if fault.reach is not None and fault.reach.problem is not None
    ]
    if not problems:
        return GuardDecision("targets", True, f"{len(reaches)} fault(s), each with its targets")
    return GuardDecision("targets", False, "; ".join(problems), True)


def _levers(policy: CanaryPolicy) -> str:
    switch = policy.kill_switch
    levers = [
        f"file {switch.file}" if switch.file else None,
        f"${switch.env}" if switch.env else None,
        f"URL {switch.url}" if switch.url else None,
    ]
    return "not engaged (" + ", ".join(lever for lever in levers if lever) + ")"


# --------------------------------------------------------------------------- the fit


def _under_policy(validated: ValidatedExperiment, policy: CanaryPolicy) -> ValidatedExperiment:
    """The experiment with the policy's guards, kill switch and maximum duration in its
    ``inoculate`` block; :class:`ExperimentInvalid` where it cannot run under the policy."""
    source = str(validated.path)
    found = find_extension(validated.experiment)
    spec = validated.spec
    if found is None or spec is None:
        raise ExperimentInvalid(
            source,
            [FieldError("extensions", "a canary needs an `inoculate` block with SLOs")],
            "experiment for a canary",
        )
    index, block = found
    where = f"extensions[{index}]"
    errors = _source_errors(spec, where)
    errors += _duration_errors(validated.experiment, spec, policy)
    if errors:
        raise ExperimentInvalid(source, errors, "experiment for a canary")
    overrides = {
        "guards": {
            "error_budget": policy.error_budget.model_dump(mode="json"),
            "burn_rate": policy.burn_rate.model_dump(mode="json"),
        },
        "kill_switch": policy.kill_switch.model_dump(mode="json", exclude_none=True),
        "max_duration_s": policy.max_duration_s,
    }
    try:
        new_spec = InoculateSpec.model_validate(
            {**spec.model_dump(mode="json", exclude_none=True), **overrides}
        )
    except ValidationError as exc:
        raise ExperimentInvalid(
            source,
            [pydantic_field_error(where, error) for error in exc.errors()],
            "experiment for a canary",
        ) from None
    extensions = list(validated.experiment["extensions"])
    extensions[index] = {**block, **overrides}
    experiment = {**validated.experiment, "extensions": extensions}
    return validated._replace(experiment=experiment, spec=new_spec)


def _source_errors(spec: InoculateSpec, where: str) -> list[FieldError]:
    errors = []
    if spec.prometheus is None:
        errors.append(
            FieldError(f"{where}.prometheus", "the policy requires SLOs read from Prometheus")
        )
    if not spec.slos:
        errors.append(FieldError(f"{where}.slos", "a canary needs SLOs to judge and guard by"))
    for number, slo in enumerate(spec.slos):
        if slo.prometheus is None:
            errors.append(
                FieldError(
                    f"{where}.slos[{number}].prometheus",
                    f"SLO {slo.name}: the policy's slo_source is prometheus; expected its "
                    "Prometheus queries",
                )
            )
    return errors


def _duration_errors(
    experiment: Mapping[str, Any], spec: InoculateSpec, policy: CanaryPolicy
) -> list[FieldError]:
    least = least_duration_s(experiment, spec)
    if least <= policy.max_duration_s:
        return []
    return [
        FieldError(
            "method",
            f"its pauses, durations, warm-up and settling add up to at least {least:g} s, "
            f"over the policy's max_duration_s {policy.max_duration_s:g}",
        )
    ]


def least_duration_s(experiment: Mapping[str, Any], spec: InoculateSpec) -> float:
    """The least time a run of ``experiment`` takes: its declared pauses, the activities'
    ``duration_s`` arguments, the load's warm-up and the settling time."""
    total = float(spec.settle_s)
    if spec.load is not None:
        total += float(getattr(spec.load, "warmup_s", 0) or 0)
    for activity in _activities(experiment):
        pauses = activity.get("pauses")
        if isinstance(pauses, Mapping):
            total += _number(pauses.get("before")) + _number(pauses.get("after"))
        provider = activity.get("provider")
        arguments = provider.get("arguments") if isinstance(provider, Mapping) else None
        if isinstance(arguments, Mapping):  # a process provider's are a string
            total += _number(arguments.get("duration_s"))
    return total


def _activities(experiment: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    hypothesis = experiment.get("steady-state-hypothesis") or {}
    for activity in [
        *(hypothesis.get("probes") or []),
        *(experiment.get("method") or []),
        *(experiment.get("rollbacks") or []),
    ]:
        if isinstance(activity, Mapping):
            yield activity


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _check_reach(
    validated: ValidatedExperiment, reaches: list[FaultReach], policy: CanaryPolicy
) -> None:
    problems = blast_radius_problems(reaches, policy.blast_radius)
    if problems:
        raise ExperimentInvalid(
            str(validated.path),
            [FieldError("", problem) for problem in problems],
            "experiment for this policy's blast radius",
        )
