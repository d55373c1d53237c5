"""The ``load`` section of an experiment's ``inoculate`` block: how much load, and how.

Two load models (README, "Load models"):

- ``closed`` (the default): ``users`` Locust users, each sending its next request after the
  answer to its last one and its wait time. Latencies are recorded with HdrHistogram's
  coordinated-omission correction for ``expected_interval_ms`` (by default derived from the
  users' wait time), so a user stuck on a slow answer still counts the requests it did not
  send.
- ``open``: tasks of the locustfile arrive at ``rate_rps`` per second whatever the answers,
  with at most ``max_in_flight`` in flight; arrivals beyond that bound are dropped and
  counted, not queued.

Kept apart from the driver so that validating an experiment never loads the machinery that
runs Locust.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "MAX_DURATION_S",
    "MAX_EXPECTED_INTERVAL_MS",
    "MAX_IN_FLIGHT",
    "MAX_PROCESSES",
    "MAX_RATE_RPS",
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
MAX_RATE_RPS = 100_000.0
MAX_IN_FLIGHT = 100_000
MAX_EXPECTED_INTERVAL_MS = 60_000.0
DEFAULT_MAX_IN_FLIGHT = 1000

_CLOSED_ONLY = ("users", "spawn_rate", "expected_interval_ms")
_OPEN_ONLY = ("rate_rps", "max_in_flight")


class LoadSpec(BaseModel):
    """How much load to run, and how: the ``load`` block of an experiment's inoculate extension."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    locustfile: str = Field(
        min_length=1,
        description="Path of the locustfile, resolved by the caller (e.g. against the experiment).",
    )
    model: Literal["closed", "open"] = Field(
        default="closed",
        description="closed: `users` wait for their answers (Locust's users); open: tasks "
        "arrive at `rate_rps` whatever the answers.",
    )
    users: int | None = Field(
        default=None,
        ge=1,
        le=MAX_USERS,
        description="Closed model: number of concurrent Locust users (required).",
    )
    spawn_rate: float | None = Field(
        default=None,
        gt=0,
        le=MAX_SPAWN_RATE,
        description="Closed model: users started per second until `users` run (required).",
    )
    expected_interval_ms: float | None = Field(
        default=None,
        ge=0,
        le=MAX_EXPECTED_INTERVAL_MS,
        description="Closed model: the interval between a user's requests when answers are "
        "instant, for coordinated-omission correction; default: the users' mean wait time; "
        "0: no correction.",
    )
    rate_rps: float | None = Field(
        default=None,
        gt=0,
        le=MAX_RATE_RPS,
        description="Open model: tasks started per second, whatever the answers (required).",
    )
    max_in_flight: int | None = Field(
        default=None,
        ge=1,
        le=MAX_IN_FLIGHT,
        description="Open model: most tasks in flight at once; arrivals beyond it are "
        f"dropped and counted (default {DEFAULT_MAX_IN_FLIGHT}).",
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

    @model_validator(mode="after")
    def _fields_fit_the_model(self) -> LoadSpec:
        if self.model == "closed":
            needed, foreign = ("users", "spawn_rate"), _OPEN_ONLY
        else:
            needed, foreign = ("rate_rps",), _CLOSED_ONLY
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"the {self.model} model needs {' and '.join(missing)}")
        misplaced = [name for name in foreign if getattr(self, name) is not None]
        if misplaced:
            other = "open" if self.model == "closed" else "closed"
            raise ValueError(
                f"{', '.join(misplaced)} belong to the {other} model; this load is "
                f"{self.model} (set `model: {other}` or remove them)"
            )
        if self.model == "open" and self.processes > self.in_flight_bound:
            raise ValueError("max_in_flight must be at least `processes` (one per process)")
        return self

    @property
    def in_flight_bound(self) -> int:
        """The open model's bound on tasks in flight (its default when not declared)."""
        return self.max_in_flight if self.max_in_flight is not None else DEFAULT_MAX_IN_FLIGHT

    @field_validator("host")
    @classmethod
    def _host_is_http_url(cls, host: str | None) -> str | None:
        if host is not None and not host.startswith(("http://", "https://")):
            raise ValueError(f"host must be an http:// or https:// URL, got {host!r}")
        return host
