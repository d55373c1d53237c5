"""Guard rails on the real error budget, read from Prometheus: the policies and their maths.

Two guards, both on the SLOs' Prometheus sides (availability and latency: the SLIs with an
error budget):

- **Error budget before the run** (:class:`ErrorBudgetPolicy`): the budget left over the
  SLO's compliance period (``period``, e.g. ``30d``) must be at least
  ``min_remaining_percent``, else the run is skipped and nothing starts. The budget spent
  over the period is its burn rate over the period (a burn rate of 1 spends exactly the
  budget in the period), so what is left is ``100 * (1 - burn rate)``, at least 0.
- **Burn rate during the run** (:class:`BurnRatePolicy`): the Google SRE workbook's
  multi-window, multi-burn-rate alert, as an abort. The run is aborted (rollbacks run, every
  fault is reverted) when an SLO burns its budget faster than ``threshold`` times the
  sustainable pace over *both* the long and the short window: the long window says the burn
  is significant, the short one that it is still going on. The workbook pages at 14.4x over
  1 h and 5 min (2 % of a 30-day budget in one hour); an experiment lasts minutes, so the
  defaults keep the factor and the 12:1 ratio of the windows at 60 s and 5 s.

Missing data is never a pass here either: a period or a window Prometheus cannot answer for
skips the run or trips the guard, with the data status in the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from inoculate.model.status import SliDataStatus
from inoculate.steady_state.prometheus import PrometheusClient, PrometheusReading, evaluate
from inoculate.steady_state.server_side import ServerSideSlo

__all__ = [
    "GUARDED_SLIS",
    "BudgetLeft",
    "BurnRatePolicy",
    "ErrorBudgetPolicy",
    "Guards",
    "TripCheck",
    "budget_left",
    "budget_shortfalls",
    "burn_rate_at",
    "burn_rate_guard",
    "check_burn_rate",
    "guarded",
    "parse_duration_s",
]

# The SLIs with an error budget: a throughput floor has none.
GUARDED_SLIS = frozenset({"availability", "latency"})
_DURATION = re.compile(r"^([1-9][0-9]{0,5})(s|m|h|d|w)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_PERIOD_S = 400 * 86400


def parse_duration_s(text: str) -> int:
    """Seconds in a duration such as ``30d``, ``28d``, ``6h`` or ``90s`` (Prometheus' units)."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"expected a duration such as 30d, 6h or 90s, got {text!r}")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


class ErrorBudgetPolicy(BaseModel):
    """Skip the run unless this much of the error budget is left over the period."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    period: str = Field(
        default="30d", description="The SLO's compliance period, e.g. 30d or 28d (s, m, h, d, w)."
    )
    min_remaining_percent: float = Field(
        gt=0,
        le=100,
        allow_inf_nan=False,
        description="Least error budget, in % of the period's, that must be left to run.",
    )

    @field_validator("period")
    @classmethod
    def _a_duration(cls, value: str) -> str:
        if parse_duration_s(value) > MAX_PERIOD_S:
            raise ValueError(f"expected a period of at most 400d, got {value!r}")
        return value

    @property
    def period_s(self) -> int:
        """The period in seconds."""
        return parse_duration_s(self.period)


class BurnRatePolicy(BaseModel):
    """Abort when the burn rate exceeds ``threshold`` over both windows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    long_window_s: int = Field(default=60, ge=2, le=86400, description="The long window.")
    short_window_s: int = Field(default=5, ge=1, le=3600, description="The short window.")
    threshold: float = Field(
        default=14.4,
        gt=1,
        le=10000,
        allow_inf_nan=False,
        description="Burn rate (times the pace that spends the budget exactly in its period) "
        "above which the run is aborted.",
    )

    @model_validator(mode="after")
    def _short_under_long(self) -> BurnRatePolicy:
        if self.short_window_s >= self.long_window_s:
            raise ValueError(
                f"short_window_s ({self.short_window_s}) must be shorter than "
                f"long_window_s ({self.long_window_s})"
            )
        return self


class Guards(BaseModel):
    """The guard rails of a run (``guards:`` in the inoculate block)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    error_budget: ErrorBudgetPolicy | None = Field(
        default=None, description="checked before anything starts"
    )
    burn_rate: BurnRatePolicy | None = Field(
        default=None, description="checked every second until the method ends"
    )


def _read(
    client: PrometheusClient, side: ServerSideSlo, window_s: int, t: float
) -> PrometheusReading:
    # The SLO's own maths over another window (the model's bound on window_s is for SLOs
    # an experiment declares, not for a compliance period).
    return evaluate(client, side.slo.model_copy(update={"window_s": window_s}), side.prometheus, t)


def guarded(sides: Sequence[ServerSideSlo]) -> list[ServerSideSlo]:
    """The sides with an error budget: availability, and latency read as a share (a
    ``histogram_quantile`` estimate gives no share of slow requests)."""
    return [
        side
        for side in sides
        if side.sli in GUARDED_SLIS and (side.sli != "latency" or side.reads_share)
    ]


def burn_rate_at(
    client: PrometheusClient, side: ServerSideSlo, window_s: int, t: float
) -> float | None:
    """The side's burn rate over the ``window_s`` seconds before ``t`` (None: no data)."""
    reading = _read(client, side, window_s, t)
    return None if reading.status.missing else reading.burn_rate


@dataclass(frozen=True)
class BudgetLeft:
    """One guarded SLO's error budget left over a period: the % left (None: Prometheus
    cannot tell, and ``status`` says why), and that in a sentence."""

    name: str
    left: float | None
    sentence: str
    status: SliDataStatus


def budget_left(
    client: PrometheusClient, sides: Sequence[ServerSideSlo], policy: ErrorBudgetPolicy, t: float
) -> list[BudgetLeft]:
    """Per guarded SLO, the error budget left over the policy's period."""
    found = []
    for side in guarded(sides):
        reading = _read(client, side, policy.period_s, t)
        if reading.status.missing or reading.burn_rate is None:
            sentence = (
                f"SLO {side.name}: error budget over {policy.period} unknown "
                f"({reading.status}: {reading.reason})"
            )
            found.append(BudgetLeft(side.name, None, sentence, reading.status))
            continue
        left = max(0.0, 100.0 * (1.0 - reading.burn_rate))
        sentence = f"SLO {side.name}: {left:.1f} % of its error budget over {policy.period} is left"
        found.append(BudgetLeft(side.name, left, sentence, reading.status))
    return found


def budget_shortfalls(
    client: PrometheusClient, sides: Sequence[ServerSideSlo], policy: ErrorBudgetPolicy, t: float
) -> list[str]:
    """Why the run must be skipped: one sentence per SLO whose budget left over the period is
    under the policy's minimum, or that Prometheus cannot tell; empty when every one may run."""
    return [
        found.sentence
        if found.left is None
        else f"{found.sentence}, under the minimum {policy.min_remaining_percent:g} %"
        for found in budget_left(client, sides, policy, t)
        if found.left is None or found.left < policy.min_remaining_percent
    ]


@dataclass(frozen=True)
class TripCheck:
    """One check of the burn-rate guard: the burn rates seen, and why it trips (or None)."""

    rates: tuple[tuple[str, float | None, float | None], ...]  # (SLO, long, short)
    reason: str | None

    def record(self) -> dict[str, object]:
        """The burn rates as a JSON-ready mapping (a line of ``guards.jsonl``)."""
        return {"burn_rates": [{"slo": n, "long": lo, "short": sh} for n, lo, sh in self.rates]}


def check_burn_rate(
    client: PrometheusClient, sides: Sequence[ServerSideSlo], policy: BurnRatePolicy, t: float
) -> TripCheck:
    """Read every guarded SLO over both windows at ``t``; the guard trips on the first whose
    burn rate exceeds the threshold over both, or whose windows Prometheus cannot read."""
    rates = []
    reason = None
    for side in guarded(sides):
        long_read = _read(client, side, policy.long_window_s, t)
        short_read = _read(client, side, policy.short_window_s, t)
        rates.append((side.name, long_read.burn_rate, short_read.burn_rate))
        if reason is not None:
            continue
        missing = next((r for r in (long_read, short_read) if r.status.missing), None)
        if missing is not None:
            reason = (
                f"burn-rate guard: SLO {side.name} cannot be read over {missing.window_s} s "
                f"({missing.status}: {missing.reason})"
            )
        elif (long_read.burn_rate or 0) > policy.threshold and (
            short_read.burn_rate or 0
        ) > policy.threshold:
            reason = (
                f"burn-rate guard: SLO {side.name} burns its error budget at "
                f"{long_read.burn_rate:.1f}x over {policy.long_window_s} s and "
                f"{short_read.burn_rate:.1f}x over {policy.short_window_s} s, above "
                f"{policy.threshold:g}x"
            )
    return TripCheck(tuple(rates), reason)


def burn_rate_guard(
    client: PrometheusClient, sides: Sequence[ServerSideSlo], policy: BurnRatePolicy
) -> Callable[[float], tuple[dict[str, object], str | None]]:
    """The guard a :class:`~inoculate.steady_state.server_side.PrometheusMonitor` checks
    each second: at ``t``, the burn rates read and why it trips (or None)."""

    def check(t: float) -> tuple[dict[str, object], str | None]:
        result = check_burn_rate(client, sides, policy, t)
        return result.record(), result.reason

    return check
