"""Load and validate an experiment before anything runs.

Every problem becomes a :class:`FieldError` naming the field (``method[0] (kill-catalog)
.provider.arguments.signal``) and what was expected; all problems of a file are reported
together. Nothing is started, nothing is injected, until the whole experiment is valid.

chaoslib's own validation stops at the first problem and does not say where it is, so we
walk the activities ourselves, ask chaoslib about each one, and add what it does not
check: the shape and bounds of each activity (``activities``), the types of python
arguments (from the function's annotations) and the bounds of our activities' arguments
(``arguments``), ``${name}`` references (``references``), the
runtime strategies and the controls (``runtime``), our extension block and its locustfile
(``spec``), and SLO names referenced by probes. The file itself is read within the input
limits (``loading``).
"""

from __future__ import annotations

import importlib
import os
import re
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from chaoslib import substitute
from chaoslib.activity import ensure_activity_is_valid
from chaoslib.exceptions import ChaosException
from chaoslib.experiment import ensure_experiment_is_valid
from pydantic import ValidationError

from inoculate.experiment.activities import activity_shape_errors
from inoculate.experiment.arguments import argument_errors
from inoculate.experiment.legacy import modernize
from inoculate.experiment.loading import load_document
from inoculate.experiment.references import (
    known_names,
    secret_references,
    undefined_references,
)
from inoculate.experiment.runtime import control_errors, runtime_errors
from inoculate.experiment.spec import (
    InoculateSpec,
    find_extension,
    locustfile_problem,
    substitute_block,
    with_openslo_expanded,
)
from inoculate.model.errors import ExperimentInvalid, FieldError, SliSourceUnreachable
from inoculate.steady_state.prometheus import PrometheusClient, check_queries

__all__ = [
    "ValidatedExperiment",
    "load_experiment_file",
    "pydantic_field_error",
    "validate_experiment",
]

_PROBES_MODULE = "inoculate.steady_state.probes"
_SLO_PROBES = {(_PROBES_MODULE, "slos_met"), (_PROBES_MODULE, "slo_met")}


class ValidatedExperiment(typing.NamedTuple):
    """An experiment that passed validation, with its parsed extension block."""

    path: Path
    experiment: dict[str, Any]
    spec: InoculateSpec | None
    deprecations: tuple[str, ...] = ()


def load_experiment_file(path: Path) -> dict[str, Any]:
    """Parse a YAML or JSON experiment file into a mapping, within the input limits of
    ``inoculate.model.limits`` (raises :class:`ExperimentInvalid`)."""
    data = load_document(path, "experiment")
    if not isinstance(data, dict):
        error = FieldError("", f"expected a mapping at the top level, got {type(data).__name__}")
        raise ExperimentInvalid(str(path), [error])
    return data


def validate_experiment(
    path: Path,
    variables: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> ValidatedExperiment:
    """Load and fully validate an experiment file; raise :class:`ExperimentInvalid` listing
    every problem found. ``variables`` are the run's configuration values (``--var`` and
    var files), used where the experiment says ``${name}``; ``secrets`` the var files'
    secrets (scope → name → value): a ``${name}`` must name one of them, a key of the
    experiment's ``configuration`` or ``secrets``, or a key the runner sets."""
    experiment, deprecations = modernize(load_experiment_file(path))
    shape_errors = list(_shape_errors(experiment))
    if shape_errors:
        # Deeper checks (and chaoslib's) assume this shape: stop at the shape's problems.
        raise ExperimentInvalid(str(path), shape_errors)
    known = known_names(experiment, variables, secrets)
    configuration_names = known_names({"configuration": experiment.get("configuration")}, variables)
    names = _Names(
        _static_configuration(experiment, variables),
        known,
        # Every caller exported the .env var files first, as chaoslib does.
        frozenset(os.environ),
        known - configuration_names,
    )
    errors = list(_experiment_errors(experiment, names))
    errors.extend(runtime_errors(experiment.get("runtime")))
    errors.extend(control_errors(experiment.get("controls")))
    spec, spec_errors = _parse_spec(experiment, names, Path(path).resolve().parent)
    errors.extend(spec_errors)
    if spec is not None:
        errors.extend(_slo_reference_errors(experiment, spec))
        errors.extend(_spec_file_errors(experiment, spec, Path(path).resolve().parent))
    if not errors:
        # chaoslib's checks as a last net (tolerances, controls, configuration, secrets).
        try:
            ensure_experiment_is_valid(experiment)
        except ChaosException as exc:
            errors.append(FieldError("", str(exc)))
        except Exception as exc:  # chaoslib trips over shapes we did not foresee
            errors.append(FieldError("", f"chaoslib cannot read this experiment: {exc!r}"))
    if errors:
        raise ExperimentInvalid(str(path), errors)
    if spec is not None:
        _check_prometheus_queries(str(path), experiment, spec)
    return ValidatedExperiment(Path(path), experiment, spec, tuple(deprecations))


def _check_prometheus_queries(
    source: str, experiment: Mapping[str, Any], spec: InoculateSpec
) -> None:
    """Ask the block's Prometheus whether every SLI query parses (raise ``ExperimentInvalid``
    naming the field); a server that cannot be asked is bad input too: nothing starts."""
    sides = [(i, slo) for i, slo in enumerate(spec.slos) if slo.prometheus is not None]
    found = find_extension(experiment)
    if not sides or spec.prometheus is None or found is None:
        return
    where = f"extensions[{found[0]}]"
    with PrometheusClient(spec.prometheus) as client:
        try:
            for i, slo in sides:
                assert slo.prometheus is not None
                check_queries(
                    slo.prometheus, slo.window_s, client, source, f"{where}.slos[{i}].prometheus"
                )
        except SliSourceUnreachable as exc:
            raise ExperimentInvalid(
                source,
                [
                    FieldError(
                        f"{where}.prometheus.url",
                        f"{exc}; expected a Prometheus server that answers",
                    )
                ],
            ) from exc


class _Names(typing.NamedTuple):
    """What ``${name}`` may say: values known before the run, and every name defined."""

    configuration: Mapping[str, Any]
    known: frozenset[str]
    environment: frozenset[str]  # variables of the environment (.env var files included)
    secret_only: frozenset[str]  # names only a secret defines


_SECTION_SHAPES: dict[str, type | tuple[type, ...]] = {
    "method": list,
    "rollbacks": list,
    "steady-state-hypothesis": Mapping,
    "controls": list,
    "configuration": Mapping,
    "secrets": Mapping,
    "extensions": list,
    "tags": list,
}


def _shape_errors(experiment: Mapping[str, Any]) -> Iterator[FieldError]:
    for key, shape in _SECTION_SHAPES.items():
        value = experiment.get(key)
        if key in experiment and not isinstance(value, shape):
            kind = "a list" if shape is list else "a mapping"
            if value is None:
                yield FieldError(
                    key, f"expected {kind}, got nothing (write [] or {{}}, or remove it)"
                )
            else:
                yield FieldError(key, f"expected {kind}, got {type(value).__name__}")
    hypothesis = experiment.get("steady-state-hypothesis")
    if isinstance(hypothesis, Mapping) and not isinstance(hypothesis.get("probes", []), list):
        yield FieldError("steady-state-hypothesis.probes", "expected a list of probes")


def _experiment_errors(experiment: Mapping[str, Any], names: _Names) -> Iterator[FieldError]:
    for key in ("title", "description"):
        if not isinstance(experiment.get(key), str) or not experiment.get(key):
            yield FieldError(key, "expected a non-empty string")
    if not isinstance(experiment.get("method"), list):
        yield FieldError("method", "expected a list of activities (it may be empty)")
    for location, activity in _activities(experiment):
        yield from _activity_errors(location, activity, names)
    for index, control in enumerate(experiment.get("controls") or []):
        if isinstance(control, Mapping) and isinstance(control.get("provider"), Mapping):
            where = f"controls[{index}] ({control.get('name', '?')}).provider.arguments"
            arguments = control["provider"].get("arguments")
            yield from undefined_references(where, arguments, names.known, names.environment)


def _activities(experiment: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    hypothesis = experiment.get("steady-state-hypothesis") or {}
    probes = hypothesis.get("probes") or []
    for index, probe in enumerate(probes):
        yield f"steady-state-hypothesis.probes[{index}]", probe
    for section in ("method", "rollbacks"):
        activities = experiment.get(section)
        if isinstance(activities, list):
            for index, activity in enumerate(activities):
                yield f"{section}[{index}]", activity


def _activity_errors(location: str, activity: Any, names: _Names) -> Iterator[FieldError]:
    if not isinstance(activity, Mapping):
        yield FieldError(location, f"expected an activity mapping, got {type(activity).__name__}")
        return
    if activity.get("ref") is not None:  # as chaoslib: a reference is only a name
        if not isinstance(activity["ref"], str) or not activity["ref"]:
            yield FieldError(f"{location}.ref", "expected the name of another activity")
        return
    where = f"{location} ({activity.get('name', '?')})"
    shape_errors = list(activity_shape_errors(where, activity, names.configuration))
    for key in ("provider", "pauses", "tolerance"):
        yield from undefined_references(
            f"{where}.{key}", activity.get(key), names.known, names.environment
        )
    if shape_errors:
        yield from shape_errors  # chaoslib's own checks would crash on these shapes
        return
    try:
        ensure_activity_is_valid(dict(activity))
    except ChaosException as exc:
        yield FieldError(where, str(exc))
        return
    except Exception as exc:  # a shape neither we nor chaoslib foresaw
        yield FieldError(where, f"chaoslib cannot read this activity: {type(exc).__name__}: {exc}")
        return
    provider = activity.get("provider") or {}
    if provider.get("type") == "python":
        arguments = substitute(dict(provider.get("arguments") or {}), dict(names.configuration), {})
        type_errors = list(argument_errors(where, provider, arguments))
        yield from type_errors
        if not type_errors:
            yield from _argument_errors(where, provider, arguments)


def _argument_errors(
    where: str, provider: Mapping[str, Any], arguments: Mapping[str, Any]
) -> Iterator[FieldError]:
    """What the activity's own family checks in its arguments (``CHECKS`` of the module's
    ``checks`` beside it, e.g. ``inoculate.extensions.process.checks``): a broken regex, a
    pattern matching every process, an unknown signal."""
    package = str(provider["module"]).removesuffix(".actions").removesuffix(".probes")
    try:
        checks = importlib.import_module(f"{package}.checks").CHECKS
    except (ImportError, AttributeError):
        return
    check = checks.get(provider["func"])
    if check is None:
        return
    for argument, problem in check(arguments):
        yield FieldError(f"{where}.provider.arguments.{argument}", problem)


def _static_configuration(
    experiment: Mapping[str, Any], variables: Mapping[str, Any] | None
) -> dict[str, Any]:
    # Values that come from the environment or a vault are only known at run time.
    declared = experiment.get("configuration") or {}
    static = {k: v for k, v in declared.items() if not isinstance(v, Mapping)}
    return {**static, **(variables or {})}


def _parse_spec(
    experiment: Mapping[str, Any], names: _Names, base_dir: Path
) -> tuple[InoculateSpec | None, list[FieldError]]:
    found = find_extension(experiment)
    if found is None:
        return None, []
    index, raw = found
    where = f"extensions[{index}]"
    undefined = list(undefined_references(where, raw, names.known, names.environment))
    undefined += secret_references(where, raw, names.secret_only)
    try:
        block = with_openslo_expanded(substitute_block(raw, names.configuration), base_dir)
        spec = InoculateSpec.model_validate(block)
    except ValidationError as exc:
        return None, undefined + [
            pydantic_field_error(f"extensions[{index}]", e) for e in exc.errors()
        ]
    return (None, undefined) if undefined else (spec, [])


def _spec_file_errors(
    experiment: Mapping[str, Any], spec: InoculateSpec, base_dir: Path
) -> Iterator[FieldError]:
    # The runner resolves the block's paths against the experiment's folder, as here.
    found = find_extension(experiment)
    if spec.load is not None and found is not None:
        problem = locustfile_problem(spec.load.locustfile, base_dir)
        if problem:
            yield FieldError(f"extensions[{found[0]}].load.locustfile", problem)


def pydantic_field_error(prefix: str, error: Mapping[str, Any]) -> FieldError:
    """One of pydantic's errors as a :class:`FieldError` under ``prefix`` (the field's path,
    e.g. ``extensions[0]``; empty for a whole file), in the words of our other messages."""
    parts: list[str] = [prefix] if prefix else []
    location = list(error.get("loc", ()))
    for position, part in enumerate(location):
        if isinstance(part, int):
            parts[-1] += f"[{part}]"
        elif position > 0 and isinstance(location[position - 1], int) and _is_union_tag(part):
            continue  # pydantic adds the discriminator's value to the location
        else:
            parts.append(str(part))
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    kind = error.get("type")
    if kind == "missing":
        message = "required field is missing"
    elif kind == "extra_forbidden":
        message = "unknown field (check its spelling)"
    elif kind == "union_tag_invalid":
        context = error.get("ctx", {})
        parts.append(str(context.get("discriminator", "")).strip("'"))
        message = f"expected one of {context.get('expected_tags')}, got {context.get('tag')!r}"
    elif "input" in error and not isinstance(error["input"], dict | list):
        got = repr(error["input"])
        got = _URL_PASSWORD.sub(r"\1***@", got)  # a refused URL's password is not shown
        if got not in message:  # the validator may have said it already
            message += f" (got {got})"
    return FieldError(".".join(parts), message)


# ``scheme://user:password@``: the password of a URL quoted back in an error message.
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]*:)[^@/\s]*@")


def _is_union_tag(part: str) -> bool:
    return part in {"availability", "latency", "throughput"}


def _slo_reference_errors(
    experiment: Mapping[str, Any], spec: InoculateSpec
) -> Iterator[FieldError]:
    known = {slo.name for slo in spec.slos}
    for location, activity in _activities(experiment):
        provider = activity.get("provider") if isinstance(activity, Mapping) else None
        if not isinstance(provider, Mapping):
            continue
        named = (provider.get("module"), provider.get("func"))
        if not all(isinstance(name, str) for name in named) or named not in _SLO_PROBES:
            continue
        arguments = provider.get("arguments")
        if not isinstance(arguments, Mapping):
            continue  # reported as the activity's shape
        names = arguments.get("slos") or ([arguments["slo"]] if "slo" in arguments else [])
        for name in names if isinstance(names, list) else []:
            if isinstance(name, str) and name not in known:
                yield FieldError(
                    f"{location} ({activity.get('name', '?')}).provider.arguments",
                    f"unknown SLO {name!r}; expected one of {sorted(known)}",
                )
