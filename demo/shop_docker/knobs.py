"""Knobs of the shop in Docker: the gateway's knobs of the process flavour, plus Docker's.

Self-healing here is Docker's restart policy (``restart_policy``), not the supervisor's
``restart``/``restart_delay_s``, which are refused so an experiment cannot believe it
switched something that does not exist in this flavour.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from inoculate.demo.shop.knobs import ShopKnobs

__all__ = ["DockerShopKnobs"]

_SUPERVISOR_ONLY = ("restart", "restart_delay_s")


class DockerShopKnobs(ShopKnobs):
    """Resilience knobs of the Docker shop (restart policy, health checks, gateway)."""

    restart_policy: Literal["no", "on-failure", "always", "unless-stopped"] = Field(
        "on-failure",
        description=(
            "Docker restart policy of every container. Docker applies it when a container's "
            "process dies (a crash), not after `docker kill`/`docker stop`."
        ),
    )
    healthcheck_interval_s: float = Field(
        1.0, ge=0.2, le=60.0, description="Seconds between Docker health checks of a container."
    )
    image: str | None = Field(
        None, description="Image to run; default: the offline image of this checkout."
    )

    @field_validator(*_SUPERVISOR_ONLY, mode="before")
    @classmethod
    def _no_supervisor_knobs(cls, value: Any) -> Any:
        raise ValueError(
            "the Docker shop has no supervisor: Docker restarts containers, "
            "set `restart_policy` (no, on-failure, always, unless-stopped) instead"
        )

    def gateway_knobs(self) -> ShopKnobs:
        """The knobs the gateway reads (the process flavour's model)."""
        shared = set(ShopKnobs.model_fields) - set(_SUPERVISOR_ONLY)
        return ShopKnobs.model_validate(self.model_dump(include=shared))
