"""Reading what a Chaos Toolkit journal records: the facts the verdict rules need from it.

Pure functions over the journal's mappings, shared by the live session and by reports of
plain ``chaos run`` journals, so both read a journal the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["failed_activities", "hypothesis_met"]


def hypothesis_met(state: Any) -> bool | None:
    """Whether a steady-state section (``steady_states.before``/``after``) was met; None
    when the hypothesis was not checked."""
    return None if not isinstance(state, Mapping) else bool(state.get("steady_state_met"))


def failed_activities(runs: Any) -> list[str]:
    """The names of the activities of a journal section (``run``, ``rollbacks``) that failed."""
    return [
        str((run.get("activity") or {}).get("name"))
        for run in runs or []
        if isinstance(run, Mapping) and run.get("status") == "failed"
    ]
