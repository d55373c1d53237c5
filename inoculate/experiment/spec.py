"""The ``inoculate`` extension block of an experiment, as self-validating models.

It sits in the experiment's standard ``extensions`` list, so the Chaos Toolkit carries it
through untouched::

    extensions:
      - name: inoculate
        system: {embedded: shop, knobs: {restart: true}}
        load: {locustfile: locustfile.py, users: 50, spawn_rate: 50}
        slos: [{name: browse-availability, sli: availability, endpoint: "GET /products",
                objective: 99.0, window_s: 10}]
        recovery_objective_s: 5
        runbook: ../../runbooks/catalog.md
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from chaoslib import substitute
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from inoculate.canary.kill_switch import KillSwitch
from inoculate.experiment.openslo import read_openslo
from inoculate.load.spec import LoadSpec
from inoculate.model.errors import InputFileError
from inoculate.model.files import read_text_bounded
from inoculate.model.limits import MAX_INPUT_BYTES
from inoculate.steady_state.guards import GUARDED_SLIS, Guards
from inoculate.steady_state.prometheus_spec import PrometheusSource
from inoculate.steady_state.server_side import server_side_name
from inoculate.steady_state.slo import Slo
from inoculate.systems.registry import embedded_system, system_names

__all__ = [
    "EXTENSION_NAME",
    "InoculateSpec",
    "SystemSpec",
    "ValidationError",
    "find_extension",
    "locustfile_problem",
    "parse_extension",
    "substitute_block",
    "with_openslo_expanded",
]

EXTENSION_NAME = "inoculate"


class SystemSpec(BaseModel):
    """The embedded system the run brings up, with its resilience knobs."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    embedded: str = Field(description="name of an installed embedded system (e.g. shop)")
    knobs: dict[str, Any] = Field(default_factory=dict, description="the system's resilience knobs")
    start_timeout_s: float = Field(30.0, gt=0, le=600, description="how long start-up may take")

    @field_validator("embedded")
    @classmethod
    def _known_system(cls, value: str) -> str:
        if value not in system_names():
            raise ValueError(f"expected one of {system_names()}, got {value!r}")
        return value

    @field_validator("knobs")
    @classmethod
    def _knobs_fit_the_system(cls, knobs: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # Validated here, not at start-up, so a typo in a knob fails before anything runs.
        name = info.data.get("embedded")
        if name not in system_names():
            return knobs
        model = embedded_system(name).knobs_model
        try:
            model.model_validate(knobs)
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                knob = ".".join(str(part) for part in error["loc"])
                if error["type"] == "extra_forbidden":
                    problems.append(
                        f"unknown knob {knob!r}; expected one of {sorted(model.model_fields)}"
                    )
                else:
                    problems.append(f"knob {knob!r}: {error['msg']} (got {error.get('input')!r})")
            raise ValueError("; ".join(problems)) from None
        return knobs

    def knobs_model(self) -> BaseModel:
        """Return the knobs parsed by the system's own knobs model."""
        return embedded_system(self.embedded).knobs_model.model_validate(self.knobs)


class InoculateSpec(BaseModel):
    """What inoculate adds to a Chaos Toolkit experiment: system, load, SLOs and runbook."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: Literal["inoculate"] = EXTENSION_NAME
    system: SystemSpec | None = Field(None, description="embedded system to bring up")
    load: LoadSpec | None = Field(None, description="Locust load that runs during the experiment")
    slos: list[Slo] = Field(default_factory=list, description="service level objectives")
    prometheus: PrometheusSource | None = Field(
        None, description="the Prometheus server that SLOs with a `prometheus` SLI are read from"
    )
    guards: Guards | None = Field(
        None,
        description="error-budget and burn-rate guard rails on the SLOs' Prometheus sides",
    )
    kill_switch: KillSwitch | None = Field(
        None,
        description="levers that abort the run (rollbacks run) or keep it from starting",
    )
    max_duration_s: float | None = Field(
        None,
        gt=0,
        le=86400,
        description="the run is aborted (rollbacks run) when it has lasted this long",
    )
    recovery_objective_s: float | None = Field(
        None,
        gt=0,
        le=3600,
        description="how fast SLIs must come back within objective after a fault",
    )
    runbook: str | None = Field(None, description="Markdown runbook that reports update")
    on_breach: Literal["record", "abort"] = Field(
        "record",
        description="record: breaches during the method fail the run at the end; "
        "abort: the first breach interrupts the run (rollbacks still run)",
    )
    weight: float = Field(
        1.0, gt=0, le=1000, description="weight of this experiment in a suite's score (gate)"
    )
    settle_s: float = Field(
        0.0, ge=0, le=600, description="seconds to keep observing after the rollbacks"
    )

    @field_validator("slos")
    @classmethod
    def _unique_names(cls, slos: list[Any]) -> list[Any]:
        seen: set[str] = set()
        for slo in slos:
            if slo.name in seen:
                raise ValueError(f"SLO names must be unique; {slo.name!r} appears twice")
            seen.add(slo.name)
        return slos

    @model_validator(mode="after")
    def _slos_need_a_source(self) -> InoculateSpec:
        load_only = [slo.name for slo in self.slos if slo.prometheus is None]
        if load_only and self.load is None:
            raise ValueError(
                f"SLOs {load_only} are measured from the load: add a `load` section, "
                "or give each a `prometheus` SLI"
            )
        server_side = [slo.name for slo in self.slos if slo.prometheus is not None]
        if server_side and self.prometheus is None:
            raise ValueError(
                f"SLOs {server_side} are read from Prometheus: add "
                "`prometheus: {url: http://HOST:PORT}` to the block"
            )
        guarded = [
            s.name
            for s in self.slos
            if s.prometheus is not None
            and s.sli in GUARDED_SLIS
            and getattr(s.prometheus, "read_as", "share") == "share"
        ]
        if self.guards is not None and not guarded:
            raise ValueError(
                "`guards` watch the error budget of SLOs read from Prometheus: give an "
                "availability SLO, or a latency SLO read as a share, a `prometheus` SLI"
            )
        names = {slo.name for slo in self.slos}
        for name in server_side:
            if server_side_name(name) in names:
                raise ValueError(
                    f"SLO name {server_side_name(name)!r} is taken by the Prometheus side of "
                    f"{name!r}; rename it"
                )
        return self

    def resolve_path(self, value: str, base_dir: Path) -> Path:
        """Resolve a path of this block relative to the experiment's directory."""
        path = Path(value)
        return path if path.is_absolute() else (base_dir / path).resolve()


def find_extension(experiment: Mapping[str, Any]) -> tuple[int, Mapping[str, Any]] | None:
    """Return the index and raw mapping of the experiment's ``inoculate`` extension, or None."""
    for index, extension in enumerate(experiment.get("extensions") or []):
        if isinstance(extension, Mapping) and extension.get("name") == EXTENSION_NAME:
            return index, extension
    return None


def parse_extension(
    experiment: Mapping[str, Any],
    configuration: Mapping[str, Any] | None = None,
    base_dir: Path | None = None,
) -> InoculateSpec | None:
    """Parse the ``inoculate`` extension (raises pydantic's ``ValidationError``, or
    ``ExperimentInvalid`` for an OpenSLO file it names), or None.

    ``${name}`` forms are substituted from the configuration first, as chaoslib does for
    activity arguments, so ``--var`` can set e.g. ``load.host``; ``{openslo: FILE}`` in
    ``slos`` is read relative to ``base_dir`` (the experiment's folder).
    """
    found = find_extension(experiment)
    if found is None:
        return None
    block = substitute_block(found[1], configuration)
    return InoculateSpec.model_validate(with_openslo_expanded(block, base_dir or Path.cwd()))


def with_openslo_expanded(block: Any, base_dir: Path) -> Any:
    """The block with each ``{openslo: FILE}`` of its ``slos`` (the whole of ``slos``, or an
    item of the list) replaced by the SLOs the OpenSLO file declares, each with its
    Prometheus SLI; the file's Prometheus ``DataSource`` is the block's ``prometheus`` when
    the block names none. Raises ``ExperimentInvalid`` naming the OpenSLO file and field."""
    if not isinstance(block, Mapping):
        return block
    slos = block.get("slos")
    items = [slos] if _names_openslo(slos) else slos
    if not isinstance(items, list) or not any(_names_openslo(item) for item in items):
        return block
    expanded: list[Any] = []
    source = block.get("prometheus")
    for item in items:
        if not _names_openslo(item):
            expanded.append(item)
            continue
        path = Path(str(item["openslo"]))
        for objective in read_openslo(path if path.is_absolute() else base_dir / path):
            declared = objective.slo.model_dump(mode="json", exclude={"prometheus"})
            expanded.append({**declared, "prometheus": objective.sli.model_dump(mode="json")})
            if source is None and objective.source is not None:
                source = objective.source.model_dump(mode="json")
    return {**block, "slos": expanded, **({"prometheus": source} if source else {})}


def _names_openslo(item: Any) -> bool:
    return isinstance(item, Mapping) and set(item) == {"openslo"}


def substitute_block(raw: Mapping[str, Any], configuration: Mapping[str, Any] | None) -> Any:
    """Return the raw block with ``${name}`` replaced from ``configuration``."""
    return substitute(dict(raw), dict(configuration or {}), {})


def locustfile_problem(value: str, base_dir: Path) -> str | None:
    """What keeps Locust from loading the locustfile ``value`` (relative to ``base_dir``,
    the experiment's folder, as the runner resolves it), or None.

    Checked at validation so that a missing or broken locustfile fails before the system
    starts, not when Locust does (which would end the run as aborted, exit 3).
    """
    try:
        path = Path(value) if Path(value).is_absolute() else base_dir / value
        source = read_text_bounded(path, MAX_INPUT_BYTES)
    except FileNotFoundError:
        return f"{path}: no such file (relative paths start at the experiment's folder)"
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        return f"{value!r}: cannot read file: {getattr(exc, 'strerror', None) or exc}"
    except InputFileError as exc:
        return f"{path}: the file {exc.problem}"
    try:
        compile(source, str(path), "exec")
    except SyntaxError as exc:
        return f"{path}: line {exc.lineno}: {exc.msg}; expected a Python locustfile"
    except (ValueError, RecursionError, MemoryError) as exc:
        return f"{path}: not a Python locustfile ({type(exc).__name__}: {exc})"
    return None
