"""The arguments of a python activity: their types, and the bounds of inoculate's activities.

chaoslib passes an activity's arguments to its function as they are. A string where the
function wants a number (YAML 1.1 reads ``1e9`` as the *string* ``"1e9"``) is a TypeError,
and a negative duration a failed action, only once the system and the load are running:
the run ends failed and is recorded. Here every argument is checked before anything runs:

- its **type**, against the function's annotation, strictly (no string is taken for a
  number, no ``true`` for a count) — as the function will receive it;
- its **bounds**, for every activity of inoculate (``inoculate.*`` modules: process,
  docker, toxiproxy, host_network, kubernetes, the probes). The bounds are named once, here,
  by argument name, because the families name an argument the same way when it means the
  same thing (``duration_s``, ``timeout_s``, ``percentage``, ``count`` …); the actions keep
  their own checks for calls that never went through validation (a plain ``chaos run``).

A value that still holds a ``${name}`` after the values known before the run were
substituted is checked when the activity runs.
"""

from __future__ import annotations

import importlib
import inspect
import math
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pydantic import TypeAdapter, ValidationError

from inoculate.experiment.activities import MAX_TIMEOUT_S
from inoculate.experiment.references import referenced_names
from inoculate.model.errors import FieldError

__all__ = ["ARGUMENT_BOUNDS", "Bound", "argument_errors"]

_INJECTED_PARAMETERS = frozenset({"configuration", "secrets"})
_OUR_MODULES = "inoculate."


@dataclass(frozen=True)
class Bound:
    """An inclusive or exclusive range of a numeric argument, and what it is in words."""

    what: str
    low: float | None = None
    low_inclusive: bool = True
    high: float | None = None

    def problem(self, value: float) -> str | None:
        """Why ``value`` is out of bounds, or None."""
        too_low = self.low is not None and (
            value < self.low or (not self.low_inclusive and value == self.low)
        )
        too_high = self.high is not None and value > self.high
        if not math.isfinite(value) or too_low or too_high:
            return f"expected {self.what} ({self.range_text()}), got {value!r}"
        return None

    def range_text(self) -> str:
        """The range in words: ``more than 0 and at most 86400``."""
        parts = []
        if self.low is not None:
            parts.append(f"{'at least' if self.low_inclusive else 'more than'} {self.low:g}")
        if self.high is not None:
            parts.append(f"at most {self.high:g}")
        return " and ".join(parts) or "a finite number"


_SECONDS = Bound("a number of seconds", 0, False, MAX_TIMEOUT_S)
_PERCENT = Bound("a percentage", 0, False, 100)
_MILLISECONDS = Bound("a number of milliseconds", 0, True, MAX_TIMEOUT_S * 1000)

# Argument name → its bounds, for every activity of an ``inoculate.*`` module.
ARGUMENT_BOUNDS: Mapping[str, Bound] = MappingProxyType(
    {
        "duration_s": _SECONDS,
        "timeout_s": _SECONDS,
        "ready_timeout_s": _SECONDS,
        "grace_period_s": Bound("a grace period in seconds", 0, True, MAX_TIMEOUT_S),
        "percentage": _PERCENT,
        "loss_percent": Bound("a percentage", 0, True, 100),
        "toxicity": Bound("a probability", 0, True, 1),
        "count": Bound("a count", 1),
        "max_processes": Bound("a number of processes", 1),
        "min_count": Bound("a count", 1),
        "replicas": Bound("a number of replicas", 0),
        "seed": Bound("a seed", 0),
        "latency_ms": _MILLISECONDS,
        "jitter_ms": _MILLISECONDS,
        "delay_ms": _MILLISECONDS,
        "cpus": Bound("a number of CPUs", 0.01, True, 1024),
        "port": Bound("a TCP port", 1, True, 65535),
        "status_code": Bound("an HTTP status", 100, True, 599),
        "expect_status": Bound("an HTTP status", 100, True, 599),
    }
)


def argument_errors(
    where: str, provider: Mapping[str, Any], substituted: Mapping[str, Any]
) -> Iterator[FieldError]:
    """Problems of the types (and, for our modules, the bounds) of a python provider's
    arguments. ``substituted`` holds the arguments with the values known before the run
    substituted; a value still holding ``${`` is left to the run."""
    try:
        func = getattr(importlib.import_module(provider["module"]), provider["func"])
        hints = typing.get_type_hints(func)
        parameters = inspect.signature(func).parameters
    except Exception:  # unresolvable annotations: chaoslib already bound the names
        return
    ours = str(provider["module"]).startswith(_OUR_MODULES)
    written = provider.get("arguments") or {}
    for name, value in substituted.items():
        if name in _INJECTED_PARAMETERS or name not in parameters or _deferred(value):
            continue
        field = f"{where}.provider.arguments.{name}"
        problem = _type_problem(hints[name], value) if name in hints else None
        if problem is None and ours and name in ARGUMENT_BOUNDS and _is_number(value):
            problem = ARGUMENT_BOUNDS[name].problem(value)
        if problem is not None:
            yield FieldError(field, problem + _origin(written.get(name), value))


def _type_problem(annotation: Any, value: Any) -> str | None:
    try:
        adapter = TypeAdapter(annotation)
    except Exception:  # an annotation pydantic cannot check
        return None
    try:
        adapter.validate_python(value, strict=True)
    except ValidationError as exc:
        problem = f"expected {_type_name(annotation)}, got {value!r} ({exc.errors()[0]['msg']})"
        if isinstance(value, str) and _reads_as_number(value) and _wants_number(annotation):
            if "e" in value.lower():
                problem += f"; YAML reads {value} as a string: write {_yaml_number(value)}"
            else:
                problem += f"; a quoted number is a string: write {value.strip()} unquoted"
        return problem
    return None


def _wants_number(annotation: Any) -> bool:
    for accepted in (1, 1.5):
        try:
            TypeAdapter(annotation).validate_python(accepted, strict=True)
            return True
        except ValidationError:
            continue
    return False


def _reads_as_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _yaml_number(text: str) -> str:
    number = float(text)
    mantissa, _, exponent = f"{number:e}".partition("e")
    return f"{float(mantissa)!r}e{int(exponent):+d}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _deferred(value: Any) -> bool:
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, Mapping):
        return any(_deferred(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_deferred(v) for v in value)
    return False


def _origin(written: Any, value: Any) -> str:
    if not (isinstance(written, str) and "${" in written and written != value):
        return ""
    if isinstance(value, str):  # a --var is a string unless it says its type
        names = list(referenced_names(written))
        name = names[0] if len(names) == 1 else "NAME"
        return (
            f" (the value of {written}: write a number in `configuration`, or type the "
            f"--var: --var {name}:float=5)"
        )
    return f" (the value of {written})"


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
