"""What ``inoculate validate`` checks in the arguments of the process activities.

Read through ``CHECKS`` (activity name → function of its arguments returning
``(argument, problem)`` pairs) by :mod:`inoculate.experiment.validation`, so that a broken
regular expression, an unknown signal or a pattern that matches every process is refused
before the system and the load start — not found mid-run, after the load ran. Arguments
still holding a ``${name}`` (a secret, or a value given only at run time) are checked when
the activity runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

from inoculate.extensions.process.targets import signal_number
from inoculate.model.errors import FaultError

__all__ = ["CHECKS"]

Problems = Iterator[tuple[str, str]]
WAIT_FOR_KEYS = frozenset({"port", "url", "pattern", "host"})


def _target(arguments: Mapping[str, Any]) -> Problems:
    service, pattern = arguments.get("service"), arguments.get("pattern")
    if bool(service) == bool(pattern):
        where = "service" if service else "pattern"
        yield where, "give exactly one target: `service` (a system service) or `pattern`"
    if isinstance(pattern, str) and not _deferred(pattern):
        yield from (("pattern", problem) for problem in _pattern_problems(pattern))


def _pattern_problems(pattern: str) -> Iterator[str]:
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        yield f"{pattern!r} is not a valid regular expression: {exc}"
        return
    if regex.search("") is not None:
        # Every command line contains the empty string: this would signal every process
        # the runner may signal on the machine.
        yield (
            f"{pattern!r} matches every command line (it matches the empty string); "
            "expected a pattern that names the target, e.g. 'redis-server .*:6379'"
        )


def _signal(arguments: Mapping[str, Any]) -> Problems:
    name = arguments.get("signal")
    if isinstance(name, str) and not _deferred(name):
        try:
            signal_number(name)
        except FaultError as exc:
            yield "signal", str(exc)


def _kill(arguments: Mapping[str, Any]) -> Problems:
    yield from _target(arguments)
    yield from _signal(arguments)


def _ensure_running(arguments: Mapping[str, Any]) -> Problems:
    yield from _target(arguments)
    yield from _wait_for(arguments)


def _wait_for(arguments: Mapping[str, Any]) -> Problems:
    wait_for = arguments.get("wait_for")
    if wait_for is None:
        return
    if not isinstance(wait_for, Mapping):
        yield "wait_for", "expected a mapping: {port: N}, {url: U} or {pattern: P}"
        return
    unknown = sorted(str(key) for key in wait_for if key not in WAIT_FOR_KEYS)
    if unknown:
        yield "wait_for", f"unknown key(s) {unknown}; expected port (and host), url or pattern"
    if not {"port", "url", "pattern"} & set(wait_for):
        yield "wait_for", "expected one of port, url or pattern"
    pattern = wait_for.get("pattern")
    if isinstance(pattern, str) and not _deferred(pattern):
        yield from (("wait_for.pattern", problem) for problem in _pattern_problems(pattern))


def _deferred(value: str) -> bool:
    return "${" in value


CHECKS: Mapping[str, Callable[[Mapping[str, Any]], Problems]] = MappingProxyType(
    {
        "kill": _kill,
        "freeze": _target,
        "thaw": _target,
        "restart": _target,
        "ensure_running": _ensure_running,
        "processes_state": _target,
        "start": _wait_for,
    }
)
