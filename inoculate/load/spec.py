"""The ``load`` section of an experiment's ``inoculate`` block: how much load, and how.

Kept apart from the driver so that validating an experiment never loads the machinery that
runs Locust.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "MAX_DURATION_S",
    "MAX_PROCESSES",
    "MAX_REQUEST_TIMEOUT_S",
    "MAX_SPAWN_RATE",
    "MAX_USERS",
    "MAX_WARMUP_S",
    "LoadSpec",
]

# Far above what one machine's Locust drives, far below what exhausts it (README: "Input
# limits"); every number of the block must also be finite.
MAX_USERS = 10_000
MAX_SPAWN_RATE = 1_000.0
MAX_PROCESSES = 64
MAX_DURATION_S = 24 * 3600.0
MAX_REQUEST_TIMEOUT_S = 300.0
MAX_WARMUP_S = 3600.0


class LoadSpec(BaseModel):
    """How much load to run, and how: the ``load`` block of an experiment's inoculate extension."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    locustfile: str = Field(
        min_length=1,
        description="Path of the locustfile, resolved by the caller (e.g. against the experiment).",
    )
    users: int = Field(ge=1, le=MAX_USERS, description="Number of concurrent Locust users.")
    spawn_rate: float = Field(
        gt=0, le=MAX_SPAWN_RATE, description="Users started per second until `users` run."
    )
    processes: int = Field(
        default=1,
        ge=1,
        le=MAX_PROCESSES,
        description="Locust processes that run users (Locust's --processes); 1 runs one, no fork.",
    )
    max_duration_s: float = Field(
        default=900.0,
        gt=0,
        le=MAX_DURATION_S,
        description="Hard bound on the load's duration (Locust's --run-time), whatever happens.",
    )
    request_timeout_s: float = Field(
        default=2.0,
        gt=0,
        le=MAX_REQUEST_TIMEOUT_S,
        description="Client timeout of every request, so that a hung service shows as failures.",
    )
    warmup_s: float = Field(
        default=5.0,
        ge=0,
        le=MAX_WARMUP_S,
        description="Time to let the load settle after it starts, before steady state is checked.",
    )
    host: str | None = Field(
        default=None,
        description="Base URL to load; by default the URL of the system under test.",
    )
    tags: tuple[str, ...] = Field(default=(), description="Run only tasks with these Locust tags.")
    user_classes: tuple[str, ...] = Field(
        default=(), description="Run only these User classes of the locustfile (default: all)."
    )

    @field_validator("host")
    @classmethod
    def _host_is_http_url(cls, host: str | None) -> str | None:
        if host is not None and not host.startswith(("http://", "https://")):
            raise ValueError(f"host must be an http:// or https:// URL, got {host!r}")
        return host
