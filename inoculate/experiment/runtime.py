"""What chaoslib reads around the activities: the ``runtime`` strategies and the controls.

chaoslib 1.44 plays rollbacks only for the strategies ``default``, ``always``, ``never`` and
``deviated``; any other word (``sometimes``) silently plays none, and ``chaos run`` takes
the strategy from the experiment's ``runtime`` block. A control whose module cannot be
imported is only logged ("the experiment will carry on running nonetheless"), and a module
that fails while importing crashes the run after it started. Both are refused here.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from inoculate.model.errors import FieldError

__all__ = [
    "HYPOTHESIS_STRATEGIES",
    "ROLLBACK_STRATEGIES",
    "control_errors",
    "runtime_errors",
]

# chaoslib.run (rollbacks) and chaoslib.types.Strategy.from_string (hypothesis), 1.44.
ROLLBACK_STRATEGIES = ("default", "always", "never", "deviated")
HYPOTHESIS_STRATEGIES = (
    "default",
    "before-method-only",
    "after-method-only",
    "during-method-only",
    "continuously",
    "skip",
)
_STRATEGIES = {"rollbacks": ROLLBACK_STRATEGIES, "hypothesis": HYPOTHESIS_STRATEGIES}


def runtime_errors(runtime: Any) -> Iterator[FieldError]:
    """Problems of an experiment's (or settings') ``runtime`` block."""
    if runtime is None:
        return
    if not isinstance(runtime, Mapping):
        yield FieldError("runtime", f"expected a mapping, got {type(runtime).__name__}")
        return
    for key, value in runtime.items():
        if key not in _STRATEGIES:
            yield FieldError(f"runtime.{key}", f"unknown key; expected one of {list(_STRATEGIES)}")
        elif not isinstance(value, Mapping):
            yield FieldError(f"runtime.{key}", "expected a mapping with `strategy`")
        else:
            yield from _strategy_errors(f"runtime.{key}", value, _STRATEGIES[key])


def _strategy_errors(
    where: str, block: Mapping[str, Any], strategies: tuple[str, ...]
) -> Iterator[FieldError]:
    for key in block:
        if key != "strategy":
            yield FieldError(f"{where}.{key}", "unknown key; expected strategy")
    strategy = block.get("strategy", "default")  # what `chaos run` assumes
    if strategy not in strategies:
        yield FieldError(
            f"{where}.strategy", f"expected one of {list(strategies)}, got {strategy!r}"
        )


def control_errors(controls: Any) -> Iterator[FieldError]:
    """Problems of the ``controls`` list: shapes, and python modules that do not import."""
    if not isinstance(controls, list):
        return  # the experiment's shape check reports it
    for index, control in enumerate(controls):
        where = f"controls[{index}]"
        if not isinstance(control, Mapping):
            yield FieldError(where, f"expected a control mapping, got {type(control).__name__}")
            continue
        if "ref" in control:
            continue
        where = f"{where} ({control.get('name', '?')})"
        if not isinstance(control.get("name"), str) or not control.get("name"):
            yield FieldError(where, "expected a non-empty `name`")
        provider = control.get("provider")
        if not isinstance(provider, Mapping):
            yield FieldError(f"{where}.provider", "expected a mapping with type and module")
            continue
        if provider.get("type") != "python":
            yield FieldError(
                f"{where}.provider.type",
                f"expected python (chaoslib's only kind of control), got {provider.get('type')!r}",
            )
            continue
        arguments = provider.get("arguments")
        if arguments is not None and not isinstance(arguments, Mapping):
            yield FieldError(f"{where}.provider.arguments", "expected a mapping")
        problem = _import_problem(provider.get("module"))
        if problem:
            yield FieldError(f"{where}.provider.module", problem)


def _import_problem(module: Any) -> str | None:
    if not isinstance(module, str) or not module:
        return f"expected the name of a Python module, got {module!r}"
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return f"cannot import {module!r} ({exc}); expected an installed Python module"
    except (Exception, SystemExit) as exc:  # the module itself fails: chaoslib would crash
        return f"importing {module!r} fails: {type(exc).__name__}: {exc}"
    return None
