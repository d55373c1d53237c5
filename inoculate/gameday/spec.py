"""The gameday file: who is in the room, what must hold before the first fault, and the agenda.

``inoculate gameday GAMEDAY.yaml`` reads it, validated like an experiment (file, field,
expected value; exit 2, nothing started). An example::

    title: Shop resilience gameday, December
    roles:
      owner: Ana Ruiz            # decides to halt
      coordinator: Ben Okafor    # at the console
      reporter: Chi Wu
      observers: [Dee, Eve]
    prerequisites:
      - name: the shop answers
        http: {url: "http://127.0.0.1:8080/healthz", expect_status: 200}
      - name: no alert is firing
        prometheus:
          url: http://127.0.0.1:9090
          query: 'count(ALERTS{alertstate="firing"}) or vector(0)'
          expect: {op: "==", value: 0}
      - name: on-call is told
        manual: The on-call engineer knows a gameday runs until 16:00.
    experiments:
      - file: experiments/shop/catalog-kill-self-healing.yaml
      - file: experiments/shop/orders-freeze-protected.yaml
        hold: true               # wait for the coordinator before this one

Experiment paths are read from the gameday file's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from inoculate.steady_state.prometheus_spec import PrometheusSource

__all__ = [
    "GamedayExperiment",
    "GamedaySpec",
    "HttpCheck",
    "Prerequisite",
    "PrometheusCheck",
    "Roles",
    "ValueExpectation",
]

# A person's or a check's name: printable, one line.
Name = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=80, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]


def without_credentials(url: str) -> str:
    """``url``, refused when it carries ``user:password@``: a check's URL is written to the
    timeline and the gameday report."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "expected a URL without user:password@ (it would be written to the timeline and "
            "the report)"
        )
    return url


class Roles(BaseModel):
    """The people of a gameday, by name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    owner: Name = Field(description="who decides to halt")
    coordinator: Name = Field(description="who runs the console")
    reporter: Name = Field(description="who writes the story down")
    observers: list[Name] = Field(default_factory=list, max_length=50)


class HttpCheck(BaseModel):
    """GET ``url``; passes on ``expect_status`` within ``timeout_s`` (no redirect followed)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(pattern=r"^https?://[^\s/]+(/\S*)?$", max_length=500)
    expect_status: int = Field(200, ge=100, le=599)
    timeout_s: float = Field(5.0, gt=0, le=60, allow_inf_nan=False)

    _no_credentials = field_validator("url")(lambda cls, url: without_credentials(url))


class ValueExpectation(BaseModel):
    """How a query's value must compare with ``value``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    op: Literal["==", "!=", "<", "<=", ">", ">="]
    value: float = Field(allow_inf_nan=False)

    def holds(self, found: float) -> bool:
        """Whether ``found`` satisfies the expectation."""
        return {
            "==": found == self.value,
            "!=": found != self.value,
            "<": found < self.value,
            "<=": found <= self.value,
            ">": found > self.value,
            ">=": found >= self.value,
        }[self.op]


class PrometheusCheck(PrometheusSource):
    """An instant query that must return one value satisfying ``expect``."""

    query: str = Field(min_length=1, max_length=4000)
    expect: ValueExpectation

    _no_credentials = field_validator("url")(lambda cls, url: without_credentials(url))


class Prerequisite(BaseModel):
    """One item of the checklist: exactly one of ``http``, ``prometheus`` or ``manual``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Name
    http: HttpCheck | None = None
    prometheus: PrometheusCheck | None = None
    manual: str | None = Field(
        None, min_length=1, max_length=500, description="what the coordinator confirms"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Prerequisite:
        given = [k for k in ("http", "prometheus", "manual") if getattr(self, k) is not None]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(f"expected exactly one of http, prometheus, manual; got {found}")
        return self

    @property
    def check(self) -> str:
        """The kind of check: http, prometheus or manual."""
        if self.http is not None:
            return "http"
        return "prometheus" if self.prometheus is not None else "manual"


class GamedayExperiment(BaseModel):
    """One item of the agenda: an experiment file, optionally held before it starts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: Path
    hold: bool = Field(False, description="wait for the coordinator before this experiment")


class GamedaySpec(BaseModel):
    """A gameday file (see the module's docstring for an example)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: Name
    roles: Roles
    prerequisites: list[Prerequisite] = Field(default_factory=list, max_length=50)
    experiments: list[GamedayExperiment] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _unique_names(self) -> GamedaySpec:
        names = [p.name for p in self.prerequisites]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"prerequisite names must be unique; twice: {', '.join(twice)}")
        return self
