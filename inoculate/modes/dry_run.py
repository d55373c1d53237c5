"""``inoculate run --dry-run`` and ``inoculate validate --targets``: what each fault would hit.

The experiment is validated as for a run; then, for every activity of the method and the
rollbacks, its target is resolved *right now* — the processes a pattern matches, the
containers a selector finds, the proxies a name matches, the pods a label selector lists —
and nothing is started, injected or recorded. A target family says how through the
``PREVIEWS`` mapping of its ``preview`` module (``inoculate.extensions.process.preview``):
activity name → function of the activity's arguments and the run's configuration.
Activities of other modules are listed without a preview.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chaoslib import substitute

from inoculate.experiment.validation import ValidatedExperiment

__all__ = ["Preview", "preview_targets"]

Previewer = Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]]


@dataclass(frozen=True)
class Preview:
    """One activity and what it would hit now."""

    where: str
    activity: str
    call: str
    targets: tuple[str, ...]


def preview_targets(
    validated: ValidatedExperiment,
    configuration: Mapping[str, Any],
    secrets: Mapping[str, Any] | None = None,
) -> list[Preview]:
    """Resolve the targets of every method and rollback activity; act on nothing."""
    experiment = validated.experiment
    values = {**(experiment.get("configuration") or {}), **configuration}
    previews = []
    for section in ("method", "rollbacks"):
        for index, activity in enumerate(experiment.get(section) or []):
            provider = activity.get("provider") or {}
            if provider.get("type") != "python":
                continue
            module, func = str(provider.get("module")), str(provider.get("func"))
            arguments = substitute(dict(provider.get("arguments") or {}), values, secrets or {})
            previewer = _previewer(module, func)
            if previewer is None:
                targets: tuple[str, ...] = ("(no preview for this activity)",)
            else:
                targets = tuple(_safely(previewer, arguments, values))
            where, name = f"{section}[{index}]", str(activity.get("name"))
            previews.append(Preview(where, name, f"{module}.{func}", targets))
    return previews


def _previewer(module: str, func: str) -> Previewer | None:
    package = module.removesuffix(".actions").removesuffix(".probes")
    try:
        found: Mapping[str, Previewer] = importlib.import_module(f"{package}.preview").PREVIEWS
    except (ImportError, AttributeError):
        return None
    return found.get(func)


def _safely(
    previewer: Previewer, arguments: Mapping[str, Any], values: Mapping[str, Any]
) -> list[str]:
    try:
        return previewer(arguments, values)
    except Exception as exc:  # a preview that cannot tell says so; a dry run never crashes
        return [f"cannot tell now: {type(exc).__name__}: {exc}"]
