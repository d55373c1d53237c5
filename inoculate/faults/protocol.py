"""How a fault is injected and reverted through the fault ledger: the one path every kind uses.

A fault family (``inoculate.extensions.process`` ...) registers ``REVERTERS``: a read-only
mapping from fault name to a *reverter*, a function that undoes the fault from its ledger
record alone (:mod:`inoculate.faults.kinds`). Injection goes through :func:`inject`, which
writes the undo record durably before it acts. Reverting goes through :func:`revert_record`,
which finds the reverter by the record's kind and settles the record only once the reverter
returned — a reverter raises when it could not restore the target. This is what lets
``inoculate recover`` undo faults of a process that died: the record carries everything.

Rollbacks call :func:`revert_matching`, which reverts only the records **of the calling run**
(its run id, from the configuration), never a neighbour's that happens to share the target,
and raises :class:`~inoculate.model.errors.FaultError` when any revert failed, so a rollback
that did not restore its target always fails.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from inoculate.faults import hidden
from inoculate.faults.kinds import UnknownKind, reverter_for, target_keys, verifier_for
from inoculate.faults.ledger import (
    FaultLedger,
    LedgerRecord,
    ledger_from_configuration,
    run_dir_from_configuration,
    run_id_from_configuration,
)
from inoculate.model.errors import FaultError
from inoculate.model.layout import FAULTS_FILE
from inoculate.model.secrets import scrub_text, secrets_of
from inoculate.model.timeline import read_timeline

__all__ = [
    "RevertOutcome",
    "Reverter",
    "check_restored",
    "held_elsewhere",
    "inject",
    "read_timeline",
    "revert_matching",
    "revert_outstanding",
    "revert_record",
    "settle",
]

logger = logging.getLogger("inoculate.faults")
T = TypeVar("T")


class Reverter(Protocol):
    """Undo a fault from its ledger record; return a one-line description of what was done."""

    def __call__(self, record: LedgerRecord) -> str: ...


@dataclass(frozen=True)
class RevertOutcome:
    """What happened when one ledger record was reverted."""

    record: LedgerRecord
    reverted: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready summary for journals and command output."""
        return {
            "id": self.record.id,
            "kind": self.record.kind,
            "fault": self.record.kind,
            "target": dict(self.record.target),
            "description": self.record.description,
            "reverted": self.reverted,
            "detail": self.detail,
        }


def inject(
    configuration: Mapping[str, Any] | None,
    family: str,
    fault: str,
    target: Mapping[str, Any],
    undo: Mapping[str, Any],
    act: Callable[[], T],
    description: str = "",
) -> tuple[LedgerRecord, T]:
    """Record the fault's undo durably, then act. The record stays if ``act`` fails part-way,
    so the rollback (or ``inoculate recover``) reverts whatever the act managed to do."""
    ledger = ledger_from_configuration(configuration)
    run_id = run_id_from_configuration(configuration)
    secrets = secrets_of(run_id)
    record_id = uuid.uuid4().hex
    # A secret in the target (a pattern that is a password) or the undo becomes a token whose
    # value waits beside the ledger: the record stays free of secrets and still revertible.
    kept, tokens = hidden.hide({"target": dict(target), "undo": dict(undo)}, secrets)
    if tokens:
        hidden.store(ledger.path, record_id, tokens)
    record = ledger.record(
        kind=f"{family}:{fault}",
        target=kept["target"],
        undo=kept["undo"],
        run_id=run_id,
        description=scrub_text(description, secrets),
        run_dir=run_dir_from_configuration(configuration),
        record_id=record_id,
    )
    _append_timeline(record, {"op": "inject", "at": record.injected_at, **record.to_json()})
    return record, act()


def settle(
    ledger: FaultLedger, record: LedgerRecord, detail: str = "", at: float | None = None
) -> None:
    """Mark a fault reverted in the ledger and in its run's fault timeline; ``at`` is when
    its window ended, when that was before now (restored by a rollback we did not run)."""
    detail = scrub_text(detail, set(hidden.load(ledger.path, record.id).values()))
    ledger.resolve(record.id)
    hidden.discard(ledger.path, record.id)
    ended = time.time() if at is None else at
    _append_timeline(record, {"op": "revert", "id": record.id, "at": ended, "detail": detail})


def check_restored(ledger: FaultLedger, record: LedgerRecord) -> tuple[bool | None, str]:
    """Whether the fault's target is back as it was, per its family's verifier: True, False,
    or None when it cannot be told (no verifier, or the check itself failed)."""
    verifier = verifier_for(record.kind)
    if verifier is None:
        return None, "not checked (its family has no check)"
    revealed, tokens = _revealed(ledger, record)
    try:
        restored, detail = verifier(revealed)
    except Exception as exc:  # a check that cannot run says so; it never crashes a verdict
        return None, f"could not check: {type(exc).__name__}: {exc}"
    return restored, scrub_text(detail, set(tokens.values()))


def _revealed(ledger: FaultLedger, record: LedgerRecord) -> tuple[LedgerRecord, dict[str, str]]:
    """The record with its tokens replaced by the secret values (for reverters and checks
    only: never written or printed), and the tokens."""
    tokens = hidden.load(ledger.path, record.id)
    if not tokens:
        return record, tokens
    target = hidden.reveal(record.target, tokens)
    return replace(record, target=target, undo=hidden.reveal(record.undo, tokens)), tokens


def _append_timeline(record: LedgerRecord, event: Mapping[str, Any]) -> None:
    # The run's own timeline survives ledger compaction; the report reads fault windows from it.
    if not record.run_dir or not Path(record.run_dir).is_dir():
        return
    with open(Path(record.run_dir) / FAULTS_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(event, sort_keys=True) + "\n")


def revert_record(ledger: FaultLedger, record: LedgerRecord) -> RevertOutcome:
    """Revert one recorded fault with its family's reverter and settle it in the ledger.

    A fault that cannot be reverted stays outstanding, so a later ``recover`` retries it.
    When a live run's fault holds the same target (two runs froze the same process), the
    record is settled without touching the target: the last holder reverts it.
    """
    try:
        reverter: Reverter = reverter_for(record.kind)
    except (UnknownKind, ImportError, AttributeError) as exc:
        return RevertOutcome(record, False, f"no reverter for {record.kind}: {exc}")
    holder = _live_holder(ledger, record)
    if holder is not None:
        detail = (
            f"left in place: run {holder.run_id}'s fault ({holder.description or holder.kind}) "
            "still holds the same target and reverts it"
        )
        settle(ledger, record, detail)
        return RevertOutcome(record, True, detail)
    revealed, tokens = _revealed(ledger, record)
    try:
        detail = reverter(revealed)
    except Exception as exc:  # a reverter's failure must not stop the others
        why = scrub_text(str(exc), set(tokens.values()))
        logger.warning("reverting %s failed: %s", record.description or record.id, why)
        return RevertOutcome(record, False, f"revert failed: {why}")
    detail = scrub_text(detail, set(tokens.values()))
    settle(ledger, record, detail)
    return RevertOutcome(record, True, detail)


def held_elsewhere(
    configuration: Mapping[str, Any] | None, kind: str, key: str
) -> LedgerRecord | None:
    """A live run's outstanding fault of ``kind`` on ``key`` (see
    :func:`inoculate.faults.kinds.target_keys`), other than the calling run's, or None.

    Rollbacks that also *ensure* a state (resume every target process, enable every target
    proxy) skip what another run still holds: that run's rollback restores it.
    """
    owner = run_id_from_configuration(configuration)
    for record in ledger_from_configuration(configuration).outstanding():
        theirs = record.kind == kind and record.run_id != owner
        if theirs and key in target_keys(record) and record.owner_alive():
            return record
    return None


def _live_holder(ledger: FaultLedger, record: LedgerRecord) -> LedgerRecord | None:
    """Another run's outstanding record, of a live owner, on the same physical target."""
    keys = target_keys(record)
    if not keys:
        return None
    for other in ledger.outstanding():
        if other.id == record.id or other.run_id == record.run_id or other.kind != record.kind:
            continue
        if keys & target_keys(other) and other.owner_alive():
            return other
    return None


def revert_outstanding(
    ledger: FaultLedger,
    run_id: str | None = None,
    matches: Callable[[LedgerRecord], bool] | None = None,
) -> list[RevertOutcome]:
    """Revert every outstanding fault (of one run, or matching a predicate), newest first."""
    records = [r for r in ledger.outstanding(run_id) if matches is None or matches(r)]
    return [revert_record(ledger, record) for record in reversed(records)]


def revert_matching(
    configuration: Mapping[str, Any] | None,
    matches: Callable[[LedgerRecord], bool],
) -> list[RevertOutcome]:
    """The rollback path: revert this run's outstanding faults that ``matches`` selects.

    Only records owned by the calling run (the run id in ``configuration``; records without
    one when there is none) are considered, so one run never reverts another's fault.
    Raises :class:`FaultError` naming every fault that could not be reverted; those stay in
    the ledger for ``inoculate recover``.
    """
    ledger = ledger_from_configuration(configuration)
    owner = run_id_from_configuration(configuration)
    records = [
        r for r in ledger.outstanding() if r.run_id == owner and matches(_revealed(ledger, r)[0])
    ]
    outcomes = [revert_record(ledger, record) for record in reversed(records)]
    failed = [o for o in outcomes if not o.reverted]
    if failed:
        raise FaultError(
            "could not revert: "
            + "; ".join(f"{o.record.description or o.record.kind}: {o.detail}" for o in failed)
        )
    return outcomes
