"""After the rollbacks: what happened to each fault, told as it happened.

- A fault no reverter of ours settled (the experiment rolled it back its own way, or the
  system healed) is first *checked*: restored, its record is settled with its window ending
  when the rollbacks ended — no story of a safety net; not restored, inoculate reverts it
  (the safety net) and says so.
- Every fault of the run is then checked against its target (:func:`check_restored`): a
  fault whose target is not back fails the run, whoever's rollback ran.
- The after steady state is judged on windows that start after the rollbacks: the run waits
  for a fresh window of every SLO (bounded) before the hypothesis is checked again.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from inoculate.faults.ledger import FaultLedger, LedgerRecord
from inoculate.faults.protocol import check_restored, read_timeline, revert_record, settle
from inoculate.steady_state.store import SliStore, last_judged_second

__all__ = ["Restoration", "check_every_fault", "settle_leftovers", "wait_fresh_windows"]

logger = logging.getLogger("inoculate")


@dataclass(frozen=True)
class Restoration:
    """Whether one fault's target was back after the rollbacks, and what was seen."""

    restored: bool | None
    detail: str


def settle_leftovers(
    ledger: FaultLedger, run_id: str, rollbacks_ended_at: float | None
) -> tuple[list[dict[str, object]], list[str]]:
    """Settle this run's records no reverter settled; return the ones inoculate had to
    revert itself (the safety net) and the ones still left (their revert failed)."""
    reverted = []
    for record in reversed(ledger.outstanding(run_id=run_id)):
        restored, detail = check_restored(ledger, record)
        if restored:
            # The experiment's own rollbacks (or the system) restored it: the window ends
            # with the rollbacks, and nothing was reverted by us.
            settle(ledger, record, f"restored by the rollbacks: {detail}", rollbacks_ended_at)
            continue
        outcome = revert_record(ledger, record)
        logger.warning(
            "fault not restored by the rollbacks (%s); %s: %s",
            detail,
            "inoculate reverted it" if outcome.reverted else "inoculate could not revert it",
            outcome.detail,
        )
        reverted.append(outcome.to_json())
    left = [r.description or r.id for r in ledger.outstanding(run_id=run_id)]
    return reverted, left


def check_every_fault(ledger: FaultLedger, run_dir: Path) -> dict[str, Restoration]:
    """Check every fault the run injected (its timeline) against its target, by id."""
    checked = {}
    for event in read_timeline(run_dir):
        if event.get("op") != "inject":
            continue
        try:
            record = LedgerRecord.from_json(event)
        except (KeyError, TypeError, ValueError):
            continue
        restored, detail = check_restored(ledger, record)
        checked[record.id] = Restoration(restored, detail)
    return checked


def wait_fresh_windows(
    store: SliStore,
    since: float,
    windows_s: Sequence[int],
    timeout_s: float,
    stop: Callable[[], bool] = lambda: False,
) -> bool:
    """Wait until every SLO window can be made of seconds after ``since`` only — sampled,
    or overdue and so judged as silence — and return True; False after ``timeout_s`` or
    when ``stop()`` says so (a signal)."""
    if not windows_s:
        return True
    needed = math.ceil(since) + max(windows_s) - 1
    deadline = time.monotonic() + timeout_s
    while not stop():
        store.refresh()
        if last_judged_second(store.latest_t(), time.time()) >= needed:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return False
