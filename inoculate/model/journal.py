"""Reading what a Chaos Toolkit journal records: the facts the verdict rules need from it.

Pure functions over the journal's mappings, shared by the live session and by reports of
plain ``chaos run`` journals, so both read a journal the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inoculate.model.summary import value_text

__all__ = ["failed_activities", "hypothesis_met", "slo_verdicts", "verdict_in_words"]


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


def slo_verdicts(state: Any) -> dict[str, Mapping[str, Any]]:
    """The SLO verdicts the SLO probes of a steady-state section recorded, by SLO name
    (``slos_met`` outputs ``{"slos": [...]}``, ``slo_met`` one verdict)."""
    found: dict[str, Mapping[str, Any]] = {}
    if not isinstance(state, Mapping):
        return found
    for probe in state.get("probes") or []:
        output = probe.get("output") if isinstance(probe, Mapping) else None
        if not isinstance(output, Mapping):
            continue
        verdicts = output.get("slos") if isinstance(output.get("slos"), list) else [output]
        for verdict in verdicts:
            if isinstance(verdict, Mapping) and "name" in verdict and "met" in verdict:
                found[str(verdict["name"])] = verdict
    return found


def verdict_in_words(verdict: Mapping[str, Any]) -> str:
    """An SLO verdict as a reason states it: ``name value (objective >= 99.0%)``."""
    value, unit = verdict.get("value"), verdict.get("unit") or ""
    objective = verdict.get("objective")
    target = value_text(objective, unit) if isinstance(objective, int | float) else objective
    objective = f"{verdict.get('comparison', '')} {target}".strip()
    if value is None:  # no value to compare: the reason says why
        return f"{verdict['name']}: {verdict.get('reason') or 'no value'}"
    return f"{verdict['name']} {value_text(value, unit)} (objective {objective})"
