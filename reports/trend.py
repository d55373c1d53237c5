"""Points of a score trend, as the history returns them (importing this loads nothing heavy)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SuitePoint", "TrendPoint"]


@dataclass(frozen=True)
class TrendPoint:
    """One past (or the current) run of the same experiment, from history."""

    run_id: str
    at: float
    score: float | None
    status: str


@dataclass(frozen=True)
class SuitePoint:
    """A past suite (gate) from history."""

    suite_id: str
    at: float
    score: float
    passed: bool
