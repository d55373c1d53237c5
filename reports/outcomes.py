"""What the score is computed from, per SLO and per fault: measured outcomes, no file, no clock.

Shared by the score (:mod:`.score`) and the findings (:mod:`.remediation`), which neither
imports the other's logic.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FaultOutcome", "SloOutcome"]


@dataclass(frozen=True)
class SloOutcome:
    """One SLO over the fault window, as measured (no file, no clock)."""

    name: str
    sli: str
    objective: float
    comparison: str = ">="
    unit: str = ""
    endpoint: str | None = None
    breach_seconds: int = 0
    window_seconds: int = 0
    budget_consumed: float | None = None
    budget_text: str | None = None
    worst: float | None = None
    slo_window_s: int | None = None
    first_breach_at: float | None = None
    first_breach_text: str | None = None
    fault: str | None = None
    fault_kind: str | None = None
    target: str | None = None
    after_fault_s: float | None = None
    load_model: str | None = None  # "open" or "closed": the load that measured the SLO
    source: str = "load"  # or "prometheus": read from Prometheus (server side)
    burn_rate_before: float | None = None  # Prometheus sides: before the method
    burn_before_window_s: int | None = None
    burn_rate_after: float | None = None  # and since the rollbacks ended
    burn_after_window_s: int | None = None

    @property
    def measured_by(self) -> str:
        """What measured the SLO, in a few words: the load model, or Prometheus with the
        burn rates around the method."""
        if self.source != "prometheus":
            return self.load_model or "-"
        parts = []
        for rate, window, when in (
            (self.burn_rate_before, self.burn_before_window_s, "before the method"),
            (self.burn_rate_after, self.burn_after_window_s, "after the rollbacks"),
        ):
            if rate is not None and window is not None:
                parts.append(f"burn rate {rate:.2f}x over the {window} s {when}")
        return "Prometheus" + (f" ({'; '.join(parts)})" if parts else "")

    @property
    def breached(self) -> bool:
        """The SLO missed its objective in at least one second of the fault window."""
        return self.breach_seconds > 0


@dataclass(frozen=True)
class FaultOutcome:
    """One fault: whether an SLO saw it, and how fast the SLIs came back."""

    description: str
    kind: str = ""
    target: str | None = None
    injected_at: float | None = None
    detected: bool = False
    time_to_detect_s: float | None = None
    detected_by: tuple[str, ...] = ()
    recovered: bool | None = None
    time_to_recover_s: float | None = None
    recovered_by: str | None = None
    recovery_objective_s: float | None = None
