"""``inoculate run --dry-run`` and ``inoculate validate --targets``: what each fault would hit.

The experiment is validated as for a run; then, for every activity of the method and the
rollbacks, its target is resolved *right now* — the processes a pattern matches, the
containers a selector finds, the proxies a name matches, the pods a label selector lists —
and nothing is started, injected or recorded. A target family says how through the
``PREVIEWS`` mapping of its ``preview`` module (``inoculate.extensions.process.preview``):
activity name → function of the activity's arguments and the run's configuration.
Activities of other modules are listed without a preview. Secrets are resolved as the
run resolves them, and every secret value is ``***`` in what is printed.
"""

from __future__ import annotations

import importlib
from collections import ChainMap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from chaoslib import substitute
from chaoslib.configuration import load_configuration
from chaoslib.secret import load_secrets

from inoculate.experiment.references import referenced_names
from inoculate.experiment.validation import ValidatedExperiment
from inoculate.experiment.variables import declared_secret_scopes
from inoculate.model.secrets import scrub_text, secret_values

__all__ = ["Preview", "family_table", "preview_targets", "previewer_of", "run_values"]

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
    """Resolve the targets of every method and rollback activity; act on nothing.

    ``configuration`` and ``secrets`` are the run's variables (``--var``, var files). The
    experiment's configuration and secrets are resolved as chaoslib resolves them for the
    run (inline values, ``{type: env}``), so a ``${secret}`` in a pattern matches what the
    run would match; every secret value is ``***`` in what this returns."""
    experiment = validated.experiment
    values, resolved, unresolved = run_values(experiment, configuration, secrets)
    hidden = secret_values(experiment.get("secrets"), resolved, secrets)
    scopes = [scope for scope in resolved.values() if isinstance(scope, Mapping)]
    known = set(ChainMap(values, *scopes))  # what chaoslib's substitute can find
    previews = []
    for section in ("method", "rollbacks"):
        for index, activity in enumerate(experiment.get(section) or []):
            provider = activity.get("provider") or {}
            if provider.get("type") != "python":
                continue
            module, func = str(provider.get("module")), str(provider.get("func"))
            written = dict(provider.get("arguments") or {})
            arguments = substitute(written, values, resolved)
            previewer = previewer_of(module, func)
            # Named by a `${name}` and found nowhere (an escaped `$${name}` is text).
            left = sorted(set(_names_in(written)) - known)
            if previewer is None:
                targets: tuple[str, ...] = ("(no preview for this activity)",)
            elif left:
                # Never a target matched against the literal text `${name}`.
                why = f" ({unresolved})" if unresolved else ""
                shown = ", ".join(f"${{{name}}}" for name in left)
                targets = (f"cannot tell now: {shown} has no value before the run{why}",)
            else:
                targets = tuple(_safely(previewer, arguments, values))
            where, name = f"{section}[{index}]", str(activity.get("name"))
            previews.append(
                Preview(
                    where,
                    scrub_text(name, hidden),
                    f"{module}.{func}",
                    tuple(scrub_text(target, hidden) for target in targets),
                )
            )
    return previews


def run_values(
    experiment: Mapping[str, Any],
    configuration: Mapping[str, Any],
    secrets: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """The configuration and secrets as the run's chaoslib ``Runner`` loads them (the run
    declares every variable and every var file's secret scope first); dynamic
    configuration, which runs probes, is left out. Also why a value could not be resolved
    now, or None."""
    declared = {**(experiment.get("configuration") or {}), **configuration}
    problems = []
    try:
        values = load_configuration(declared, dict(configuration))
    except Exception as exc:  # e.g. an environment variable the run will have
        values, problems = declared, [f"configuration: {exc}"]
    try:
        scopes = declared_secret_scopes(experiment.get("secrets"), secrets) or {}
        resolved = load_secrets(scopes, values, dict(secrets or {}))
    except Exception as exc:
        resolved = dict(secrets or {})
        problems.append(f"secrets: {exc}")
    return dict(values), dict(resolved), "; ".join(problems) or None


def _names_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield from referenced_names(value)
    elif isinstance(value, Mapping):
        for child in value.values():
            yield from _names_in(child)
    elif isinstance(value, list | tuple):
        for child in value:
            yield from _names_in(child)


def previewer_of(module: str, func: str) -> Previewer | None:
    """The preview function of a family's activity (its ``preview.PREVIEWS``), or None."""
    previewer: Previewer | None = family_table(module, "PREVIEWS").get(func)
    return previewer


def family_table(module: str, table: str) -> Mapping[str, Any]:
    """A mapping a target family's ``preview`` module keeps (``PREVIEWS``, ``REACH``) for the
    family whose activities live in ``module``; empty when it keeps none."""
    package = module.removesuffix(".actions").removesuffix(".probes")
    try:
        found: Mapping[str, Any] = getattr(importlib.import_module(f"{package}.preview"), table)
    except (ImportError, AttributeError):
        return {}
    return found


def _safely(
    previewer: Previewer, arguments: Mapping[str, Any], values: Mapping[str, Any]
) -> list[str]:
    try:
        return previewer(arguments, values)
    except Exception as exc:  # a preview that cannot tell says so; a dry run never crashes
        return [f"cannot tell now: {type(exc).__name__}: {exc}"]
