"""The canary policy: what an unattended production run is allowed to do, in one YAML file.

``inoculate canary EXPERIMENT --policy POLICY`` refuses to run without one. Every field is
required unless it says otherwise: a production policy states its windows, its duration, its
blast radius, its guards and its kill switch explicitly. An example::

    scope: shop-prod                 # one canary per scope at a time (the lock's name)
    windows:
      timezone: Europe/Paris
      allowed: [{days: [mon, tue, wed, thu], hours: "10:00-16:00"}]
      freeze: ["2026-12-20..2027-01-04"]
    max_duration_s: 600
    blast_radius:                    # per target kind; a kind not listed is not allowed
      docker: {max_count: 1, max_percent: 34}
      process: {max_count: 1}
    slo_source: prometheus           # every SLO must be read from Prometheus
    error_budget: {period: 30d, min_remaining_percent: 50}
    burn_rate: {long_window_s: 60, short_window_s: 5, threshold: 14.4}
    kill_switch: {file: /run/inoculate/STOP, url: "http://127.0.0.1:9000/kill-switch"}
    preflight: [{url: "https://approvals.example/chaos", secret_env: CANARY_HMAC_KEY}]

The policy's guards replace the experiment's own ``guards`` for the run.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from inoculate.canary.kill_switch import KillSwitch
from inoculate.canary.lock import validate_scope
from inoculate.canary.preflight import MAX_WEBHOOKS, Webhook
from inoculate.canary.windows import Windows
from inoculate.steady_state.guards import BurnRatePolicy, ErrorBudgetPolicy

__all__ = ["TARGET_KINDS", "CanaryPolicy", "KindLimit"]

# The fault families a blast radius can bound: the part before the colon of a ledger
# record's kind (``docker:stop``), one package of inoculate.extensions each.
TARGET_KINDS = ("process", "docker", "kubernetes", "toxiproxy", "host_network")


class KindLimit(BaseModel):
    """The most targets of one kind an experiment's faults may hit: a count, a percentage of
    the targets their selectors match, or both."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_count: int | None = Field(None, ge=1, le=10000, description="targets, summed over faults")
    max_percent: float | None = Field(
        None, gt=0, le=100, allow_inf_nan=False, description="% of what a fault's selector matches"
    )

    @model_validator(mode="after")
    def _some_limit(self) -> KindLimit:
        if self.max_count is None and self.max_percent is None:
            raise ValueError("expected `max_count`, `max_percent` or both")
        return self


class CanaryPolicy(BaseModel):
    """A canary policy file (see the module's docstring for an example)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scope: str = Field(
        description="what the lock covers (a lock file's and a Kubernetes Lease's name): "
        "lowercase letters, digits, '-' and '.', at most 63"
    )
    windows: Windows = Field(description="when chaos may run")
    max_duration_s: float = Field(
        gt=0, le=86400, allow_inf_nan=False, description="the run is aborted after this long"
    )
    blast_radius: dict[str, KindLimit] = Field(
        min_length=1, description=f"limits per target kind ({', '.join(TARGET_KINDS)})"
    )
    slo_source: Literal["prometheus"] = Field(
        "prometheus", description="where every SLO must be read from (production traffic)"
    )
    error_budget: ErrorBudgetPolicy = Field(description="checked before anything starts")
    burn_rate: BurnRatePolicy = Field(description="checked every second during the method")
    kill_switch: KillSwitch = Field(
        description="checked before the run, then the file every 0.1 s and the URL every 0.5 s"
    )
    preflight: list[Webhook] = Field(
        default_factory=list,
        max_length=MAX_WEBHOOKS,
        description="webhooks that must approve the resolved targets",
    )

    @field_validator("scope")
    @classmethod
    def _a_scope(cls, scope: str) -> str:
        return validate_scope(scope)

    @field_validator("blast_radius")
    @classmethod
    def _known_kinds(cls, limits: dict[str, KindLimit]) -> dict[str, KindLimit]:
        unknown = sorted(set(limits) - set(TARGET_KINDS))
        if unknown:
            raise ValueError(
                f"expected target kinds among {', '.join(TARGET_KINDS)}, got {', '.join(unknown)}"
            )
        return limits
