"""A finding: points lost, the evidence (which SLO, how far, when) and what to do about it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Finding"]


@dataclass(frozen=True)
class Finding:
    """Points lost on one component of the score, why, and the suggested remediation.

    ``component`` is a score component (``slo``, ``recovery``, ``after``, ``rollbacks``),
    ``before`` for the precondition, or ``method``/``run`` for facts the score does not
    weigh (a failed action, an interruption: those carry 0 points and fail the verdict).
    """

    component: str
    points_lost: float
    title: str
    evidence: str
    remediation: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The finding as the JSON report writes it."""
        return {
            "component": self.component,
            "points_lost": self.points_lost,
            "title": self.title,
            "evidence": self.evidence,
            "remediation": self.remediation,
            "data": dict(self.data),
        }
