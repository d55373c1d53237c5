"""Experiments written for inoculate 0.1 name modules that no longer exist at the top level.

Before the one-import-root layout, experiments said ``module: extensions.process``; those
modules now live under ``inoculate`` (the wheel claims no other name). ``inoculate run``,
``validate`` and ``gate`` still run such experiments: every old name is replaced by its new
one, with a warning naming the replacement. A plain ``chaos run`` cannot know the old names:
rename them there (the warning says to what).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["RENAMED_MODULES", "modernize"]

RENAMED_MODULES: Mapping[str, str] = {
    "extensions.process": "inoculate.extensions.process",
    "extensions.docker": "inoculate.extensions.docker",
    "extensions.network": "inoculate.extensions.toxiproxy",
    "extensions.kernel_network": "inoculate.extensions.host_network",
    "extensions.kubernetes": "inoculate.extensions.kubernetes",
    "extensions.control": "inoculate.extensions.control",
    "steady_state.probes": "inoculate.steady_state.probes",
}


def modernize(experiment: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Return a copy of ``experiment`` with renamed modules replaced, and one warning per
    replacement (``method[0] (kill).provider.module: extensions.process is deprecated ...``)."""
    modern = copy.deepcopy(dict(experiment))
    warnings = []
    for location, activity in _providers(modern):
        provider = activity.get("provider")
        module = provider.get("module") if isinstance(provider, dict) else None
        if isinstance(module, str) and module in RENAMED_MODULES:
            provider["module"] = RENAMED_MODULES[module]
            warnings.append(
                f"{location}.provider.module: {module} is deprecated; use {RENAMED_MODULES[module]}"
            )
    return modern, warnings


def _providers(experiment: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    hypothesis = experiment.get("steady-state-hypothesis")
    probes = hypothesis.get("probes") if isinstance(hypothesis, Mapping) else None
    sections = [("steady-state-hypothesis.probes", probes)]
    sections += [(name, experiment.get(name)) for name in ("method", "rollbacks", "controls")]
    for section, items in sections:
        if not isinstance(items, list):
            continue
        for index, item in enumerate(items):
            if isinstance(item, dict):
                yield f"{section}[{index}] ({item.get('name', '?')})", item
