"""The shape and the bounds of one activity, checked before chaoslib looks at it.

chaoslib's ``ensure_activity_is_valid`` assumes the shape it checks: ``arguments: "a=b"``
on a python provider crashes it (``'str' object has no attribute 'copy'``), and so do a
provider or ``pauses`` that is not a mapping. It accepts a negative or infinite pause or
timeout, which then fail or hang the run after the system and the load have started.
These checks run first; chaoslib's own follow only when they pass.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator, Mapping
from numbers import Real
from string import Template
from typing import Any

from inoculate.model.errors import FieldError

__all__ = [
    "ACTIVITY_KEYS",
    "MAX_PAUSE_S",
    "MAX_TIMEOUT_S",
    "PROVIDER_KEYS",
    "activity_shape_errors",
]

MAX_PAUSE_S = 24 * 3600.0
MAX_TIMEOUT_S = 24 * 3600.0

_PROVIDER_TEXT = {"python": ("module", "func"), "process": ("path",), "http": ("url",)}
# The keys the Chaos Toolkit's experiment format gives an activity and each provider type.
ACTIVITY_KEYS = frozenset(
    {"type", "name", "provider", "tolerance", "pauses", "background", "ref", "timeout",
     "dry", "controls"}
)  # fmt: skip
PROVIDER_KEYS = {
    "python": frozenset({"type", "module", "func", "arguments", "secrets"}),
    "process": frozenset({"type", "path", "arguments", "timeout", "secrets"}),
    "http": frozenset({"type", "url", "method", "headers", "expected_status", "arguments",
                       "timeout", "verify_tls", "max_retries", "secrets"}),
}  # fmt: skip


def activity_shape_errors(
    where: str, activity: Mapping[str, Any], configuration: Mapping[str, Any]
) -> Iterator[FieldError]:
    """Problems of the provider's shape, the timeout and the pauses of ``activity``;
    ``configuration`` holds the values known before the run, for ``pauses: {after: ${x}}``."""
    yield from _unknown_keys(where, activity, ACTIVITY_KEYS)
    provider = activity.get("provider")
    kind = provider.get("type") if isinstance(provider, Mapping) else None
    if isinstance(provider, Mapping) and isinstance(kind, str) and kind in PROVIDER_KEYS:
        known = PROVIDER_KEYS[kind]
        yield from _unknown_keys(f"{where}.provider", provider, known)
    if provider is not None and not isinstance(provider, Mapping):
        yield FieldError(f"{where}.provider", f"expected a mapping, got {_kind(provider)}")
    elif provider is not None:
        yield from _provider_errors(f"{where}.provider", provider)
    if activity.get("timeout") is not None:
        problem = _duration_problem(activity["timeout"], MAX_TIMEOUT_S, zero_allowed=False)
        if problem:
            yield FieldError(f"{where}.timeout", problem)
    pauses = activity.get("pauses")
    if pauses is not None and not isinstance(pauses, Mapping):
        yield FieldError(
            f"{where}.pauses", f"expected a mapping of before/after, got {_kind(pauses)}"
        )
    elif pauses is not None:
        yield from _pause_errors(f"{where}.pauses", pauses, configuration)


def _unknown_keys(
    where: str, mapping: Mapping[str, Any], known: frozenset[str]
) -> Iterator[FieldError]:
    # A typo (`pause:` for `pauses:`) is otherwise silently ignored by chaoslib: the method
    # then lasts milliseconds and judges nothing.
    for key in mapping:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"expected one of {sorted(known)}"
        if key == "secrets" and "provider" in known:
            hint = "secrets belong to the provider (provider.secrets)"
        yield FieldError(f"{where}.{key}", f"unknown key; {hint}")


def _provider_errors(where: str, provider: Mapping[str, Any]) -> Iterator[FieldError]:
    kind = provider.get("type")
    for key in _PROVIDER_TEXT.get(kind, ()) if isinstance(kind, str) else ():
        value = provider.get(key)
        if value is not None and not isinstance(value, str):
            yield FieldError(f"{where}.{key}", f"expected a string, got {_kind(value)}")
    arguments = provider.get("arguments")
    if arguments is None:
        return
    if kind == "process":
        if not isinstance(arguments, str | list | Mapping):
            yield FieldError(
                f"{where}.arguments",
                f"expected a string, a list or a mapping, got {_kind(arguments)}",
            )
    elif not isinstance(arguments, Mapping):
        yield FieldError(
            f"{where}.arguments",
            f"expected a mapping of argument names to values, got {_kind(arguments)}",
        )
    elif not all(isinstance(name, str) for name in arguments):
        yield FieldError(f"{where}.arguments", "expected argument names to be strings")


def _pause_errors(
    where: str, pauses: Mapping[str, Any], configuration: Mapping[str, Any]
) -> Iterator[FieldError]:
    for key, value in pauses.items():
        if key not in ("before", "after"):
            yield FieldError(f"{where}.{key}", "unknown pause; expected before or after")
            continue
        value = _substituted(value, configuration)
        if isinstance(value, str) and _is_reference(value):
            continue  # a value known only at run time (e.g. from the environment)
        problem = _duration_problem(value, MAX_PAUSE_S, zero_allowed=True)
        if problem:
            yield FieldError(f"{where}.{key}", problem)


def _duration_problem(value: Any, maximum: float, *, zero_allowed: bool) -> str | None:
    lowest = "≥ 0" if zero_allowed else "> 0"
    expected = f"expected a number of seconds {lowest} and ≤ {maximum:g} ({maximum / 3600:g} h)"
    if isinstance(value, bool) or not isinstance(value, Real):
        return f"{expected}, got {_kind(value)} {value!r}"
    number = float(value)
    if not math.isfinite(number) or number > maximum or number < 0:
        return f"{expected}, got {value!r}"
    if number == 0 and not zero_allowed:
        return f"{expected}, got 0"
    return None


def _substituted(value: Any, configuration: Mapping[str, Any]) -> Any:
    if isinstance(value, str) and _is_reference(value):
        name = value[2:-1]
        return configuration.get(name, value) if isinstance(name, str) else value
    return value


def _is_reference(value: str) -> bool:
    match = Template.pattern.fullmatch(value)
    return match is not None and match.group("braced") is not None


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
