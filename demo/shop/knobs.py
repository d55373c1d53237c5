"""The shop's resilience knobs: what an experiment switches to compare designs.

One frozen model shared by the supervisor (restart policy, replicas) and the gateway
(timeouts, retries, fallbacks, circuit breaker). Unknown keys are errors, and every
error names its field, so a typo in an experiment's ``knobs:`` block never passes silently.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ShopKnobs"]


class ShopKnobs(BaseModel):
    """Resilience knobs of the demo shop (supervisor and gateway behaviour)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    restart: bool = Field(True, description="The supervisor restarts a service instance that died.")
    restart_delay_s: float = Field(
        0.5, ge=0.0, le=60.0, description="Seconds the supervisor waits before a restart."
    )
    catalog_replicas: int = Field(
        1, ge=1, le=8, description="Number of catalog instances behind the gateway (1..8)."
    )
    gateway_timeout_s: float | None = Field(
        None,
        gt=0.0,
        le=300.0,
        description=(
            "Upstream timeout of the gateway per attempt, in seconds; None means no timeout "
            "(the gateway waits as long as its client does)."
        ),
    )
    gateway_retries: int = Field(
        0,
        ge=0,
        le=10,
        description="Retries of idempotent GETs on connection errors, 5xx and timeouts.",
    )
    retry_backoff_s: float = Field(
        0.1,
        ge=0.0,
        le=10.0,
        description="Backoff before the first retry, in seconds; doubled for each next retry.",
    )
    gateway_fallback: Literal["none", "cache"] = Field(
        "none",
        description=(
            "'cache' serves the last good catalog response (header X-Served-From: cache) "
            "when the catalog fails, times out or its breaker is open."
        ),
    )
    circuit_breaker: bool = Field(
        False, description="Open a per-upstream circuit after consecutive failures."
    )
    breaker_failures: int = Field(
        5, ge=1, le=1000, description="Consecutive upstream failures that open the circuit."
    )
    breaker_reset_s: float = Field(
        2.0,
        gt=0.0,
        le=300.0,
        description="Seconds an open circuit waits before letting one half-open probe through.",
    )
    catalog_proxy: bool = Field(
        False,
        description=(
            "Route the gateway's catalog traffic through a Toxiproxy-API proxy "
            "(inoculate.toxiproxy_server, one proxy per catalog replica, named like the "
            "replica) so "
            "network faults can act between gateway and catalog; its API URL is published "
            "as toxiproxy_url in state.json."
        ),
    )
    orders_fallback: Literal["none", "queue"] = Field(
        "none",
        description=(
            "'queue' accepts an order into the gateway's durable outbox (202 {queued: true}) "
            "when the orders service fails or times out, and forwards it once orders is back."
        ),
    )

    @classmethod
    def from_json(cls, text: str) -> ShopKnobs:
        """Parse knobs from a JSON object (raises pydantic.ValidationError naming the field)."""
        return cls.model_validate_json(text)
