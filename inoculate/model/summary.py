"""The run summary: the one contract between a run and everything that reads it.

``summary.json`` in a run directory, and the ``inoculate`` section of its journal, are a
:class:`RunSummary`. The session writes it (:mod:`inoculate.session.summarize`); the live
verdict, the command line, the reports, the history and the gate read it back with
:meth:`RunSummary.from_json`, which validates it, so no reader guesses at keys. A plain Chaos
Toolkit journal is judged into the same type (``inoculate.reports.run_data``), by the same
rules (:mod:`inoculate.model.verdict`).

Fields keep their version-1 names. Since version 2 a fault carries its stable ``kind``
(``process:kill``); ``fault`` holds the same value (it held a module path in version 1).
Since issue 9 each SLO says which load model measured it (``load_model``) and the summary
describes the load (``load``: model, rate or users, dropped arrivals); both are absent
(None) in older summaries and in summaries derived from plain journals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from inoculate.model.kinds import normalize_kind
from inoculate.model.status import RunStatus

__all__ = [
    "SUMMARY_VERSION",
    "BreachInterval",
    "FaultSummary",
    "FirstBreach",
    "Hypothesis",
    "LoadSummary",
    "MethodWindow",
    "RunSummary",
    "SloSummary",
    "value_text",
]

SUMMARY_VERSION = 2


class _Part(BaseModel):
    # Unknown keys are ignored: a newer writer's additions never break an older reader.
    model_config = ConfigDict(extra="ignore", frozen=True)


def value_text(value: float, unit: str) -> str:
    """An SLI value with four significant digits and never an exponent: ``2002ms``,
    ``98.88%``, ``9.2req/s`` (``{:.3g}`` printed ``2e+03ms``)."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}{unit}"
    decimals = max(0, 3 - math.floor(math.log10(abs(value))))
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text}{unit}"


class FirstBreach(_Part):
    """The first second an SLO missed its objective during the method.

    ``seen_at`` is the one instant every report gives for it (the monitor saw the window's
    value cross): reasons, findings, JUnit and each fault's time to detect use it.
    """

    t: int  # the breached second, [t, t + 1)
    seen_at: float
    after_method_start_s: float  # seen_at - the method's start
    value: float | None
    value_text: str
    objective: float
    comparison: str
    unit: str
    reason: str | None = None


class BreachInterval(_Part):
    """Consecutive breached seconds ``[start, end]`` (Unix seconds, inclusive)."""

    start: int
    end: int


class SloSummary(_Part):
    """One SLO's outcome over the run."""

    name: str
    sli: str
    endpoint: str | None = None
    objective: float
    comparison: str
    unit: str
    window_s: int
    met: bool
    breached_during_method: bool
    breach_seconds_during_method: int = 0
    breaches: list[BreachInterval] = Field(default_factory=list)
    worst_during_method: float | None = None
    first_breach: FirstBreach | None = None
    met_before: bool | None = None
    met_after: bool | None = None
    load_model: str | None = None  # "open" or "closed": the load that measured this SLO
    # "load": measured from the load's samples (client side); "prometheus": read from
    # Prometheus (server side; the name ends in ".prometheus").
    source: Literal["load", "prometheus"] = "load"
    # Prometheus sides of availability and latency SLOs: the burn rate over the window that
    # ended as the method started, and over the seconds since the rollbacks ended (None: not
    # read, or no data).
    burn_rate_before: float | None = None
    burn_before_window_s: int | None = None
    burn_rate_after: float | None = None
    burn_after_window_s: int | None = None


NO_SLO_TO_DETECT = "no SLO declared, so nothing could detect it"
RECOVERY_NOT_MEASURED = "recovery not measured (the run ended too soon after the fault to time it)"
RECOVERY_NOT_BACK = "SLIs not back within objective by the end of the run"


class FaultSummary(_Part):
    """One fault's window, detection and recovery."""

    id: str
    kind: str = ""
    fault: str = ""
    description: str = ""
    target: dict[str, Any] = Field(default_factory=dict)
    injected_at: float
    reverted_at: float | None = None
    detected: bool = False
    time_to_detect_s: float | None = None
    detected_by: list[str] = Field(default_factory=list)
    recovered: bool | None = None
    recovered_at: float | None = None
    recovered_by: str | None = None
    time_to_recover_s: float | None = None
    recovery_objective_s: float | None = None
    recovery_objective_met: bool | None = None
    restored: bool | None = None
    restored_detail: str = ""

    @property
    def recovery_state(self) -> str:
        """``no breach``, ``recovered``, ``not back`` or ``not measured`` (the run ended too soon
        after the fault for its recovery to be timed)."""
        if not self.detected:
            return "no breach"
        if self.recovered is None:
            return "not measured"
        return "recovered" if self.recovered and self.time_to_recover_s is not None else "not back"

    @model_validator(mode="before")
    @classmethod
    def _kind_from_version_1(cls, data: Any) -> Any:
        # Version 1 named the fault by module path only (`extensions.process:kill`).
        if isinstance(data, Mapping) and not data.get("kind") and data.get("fault"):
            return {**data, "kind": normalize_kind(str(data["fault"]))}
        return data


class LoadSummary(_Part):
    """The load that measured the SLOs, and what it could not send."""

    model: str = "closed"
    users: int | None = None
    rate_rps: float | None = None
    max_in_flight: int | None = None
    # Closed model: the declared expected interval (None: derived from the users' wait time
    # inside Locust; 0: no coordinated-omission correction).
    expected_interval_ms: float | None = None
    dropped_arrivals: int = 0
    dropped_arrivals_during_method: int = 0

    @property
    def description(self) -> str:
        """The load in words, for reports."""
        if self.model == "open":
            bound = f", at most {self.max_in_flight} in flight" if self.max_in_flight else ""
            text = f"open model: {self.rate_rps:g} arrivals per second whatever the answers{bound}"
            if self.dropped_arrivals:
                text += (
                    f"; {self.dropped_arrivals} arrivals dropped at that bound "
                    f"({self.dropped_arrivals_during_method} during the method)"
                )
            return text
        users = f"{self.users} users" if self.users is not None else "users"
        if self.expected_interval_ms == 0:
            correction = "latencies not corrected for coordinated omission"
        elif self.expected_interval_ms is None:
            correction = (
                "latencies corrected for coordinated omission (expected interval: the "
                "users' wait time)"
            )
        else:
            correction = (
                "latencies corrected for coordinated omission (expected interval "
                f"{self.expected_interval_ms:g} ms)"
            )
        return f"closed model: {users} waiting for their answers; {correction}"


class Hypothesis(_Part):
    """Whether the steady-state hypothesis held before and after the method (None: not run)."""

    before: bool | None = None
    after: bool | None = None


class MethodWindow(_Part):
    """When the method started and ended (Unix time)."""

    started_at: float
    ended_at: float


class RunSummary(_Part):
    """What a run concluded, and the evidence for it."""

    summary_version: int = SUMMARY_VERSION
    experiment: str | None = None
    status: RunStatus
    exit_code: int
    reasons: list[str] = Field(default_factory=list)
    hypothesis: Hypothesis = Field(default_factory=Hypothesis)
    method: MethodWindow | None = None
    slos: list[SloSummary] = Field(default_factory=list)
    faults: list[FaultSummary] = Field(default_factory=list)
    failed_activities: list[str] = Field(default_factory=list)
    failed_rollbacks: list[str] = Field(default_factory=list)
    faults_left: list[str] = Field(default_factory=list)
    run_id: str | None = None
    run_dir: str | None = None
    journal: str | None = None
    samples_file: str | None = None
    reverted_at_start: list[dict[str, Any]] = Field(default_factory=list)
    reverted_by_safety_net: list[dict[str, Any]] = Field(default_factory=list)
    runbook: str | None = None
    system_at_end: dict[str, str] = Field(default_factory=dict)
    # The seconds each steady state was judged on: from `since` (end of the warm-up, end of
    # the rollbacks), `fresh` false when no full window came within the documented bound.
    before_state_window: dict[str, Any] | None = None
    after_state_window: dict[str, Any] | None = None
    load: LoadSummary | None = None

    @property
    def method_window(self) -> tuple[float, float] | None:
        """``(started_at, ended_at)`` of the method, when it ran."""
        return None if self.method is None else (self.method.started_at, self.method.ended_at)

    @property
    def interruption(self) -> str | None:
        """Why the run stopped early (its first reason), or None when it reached a verdict."""
        if not self.status.stopped_early:
            return None
        return self.reasons[0] if self.reasons else str(self.status)

    def to_json(self) -> dict[str, Any]:
        """The JSON document (``summary.json``, the journal's ``inoculate`` section)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> RunSummary:
        """Validate a summary document (raises pydantic's ``ValidationError``)."""
        return cls.model_validate(document)
