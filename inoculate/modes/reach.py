"""A canary's blast radius: the most each fault of an experiment could hit, against a policy.

Each target family says how far its faults reach through the ``REACH`` mapping of its
``preview`` module (``inoculate.extensions.docker.preview``): fault activity → function of
the activity's arguments and the run's configuration, giving a
:class:`~inoculate.model.targets.Reach` worked out from what matches *now* and from the
fault's own bound (``count``, ``percentage``, ``max_processes``).

The rules a policy's ``blast_radius`` applies, per target kind:

- a kind the policy does not list is not allowed at all;
- ``max_count`` bounds the targets summed over every fault of the kind (faults may overlap
  in time), ``max_percent`` each fault's share of what its selector matches;
- a reach that cannot be told now (the daemon or the API cannot be asked, no bound declared)
  could exceed anything, so it is refused;
- an action that is not one of inoculate's faults (another extension's, a ``process`` or
  ``http`` provider) could do anything: a canary refuses it. Probes and the undo activities
  (``ensure_running``, ``thaw`` ...) are not faults.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chaoslib import substitute

from inoculate.canary.policy import KindLimit
from inoculate.experiment.validation import ValidatedExperiment
from inoculate.model.secrets import scrub_text, secret_values
from inoculate.model.targets import Reach
from inoculate.modes.dry_run import family_table, previewer_of, run_values

__all__ = ["FaultReach", "blast_radius_problems", "fault_reaches"]

_OURS = "inoculate.extensions."
ReachOf = Callable[[Mapping[str, Any], Mapping[str, Any]], Reach]


@dataclass(frozen=True)
class FaultReach:
    """One action of the method or the rollbacks and how far it reaches (None: unknown)."""

    where: str
    activity: str
    call: str
    reach: Reach | None
    targets: tuple[str, ...] = ()  # what it would hit now, as the dry run lists it

    def record(self) -> dict[str, Any]:
        """A JSON-ready mapping (the audit log's ``targets``)."""
        reach = self.reach
        return {
            "where": self.where,
            "activity": self.activity,
            "call": self.call,
            "kind": reach.kind if reach else None,
            "most": reach.most if reach else None,
            "percent": reach.percent if reach else None,
            "how": reach.why if reach else "not one of inoculate's faults: its reach is unknown",
            "targets": list(self.targets),
        }


def fault_reaches(
    validated: ValidatedExperiment,
    configuration: Mapping[str, Any],
    secrets: Mapping[str, Any] | None = None,
) -> list[FaultReach]:
    """Every fault action of the method and the rollbacks, with its reach now; actions that
    are not inoculate's faults come with ``reach=None``. Secret values read ``***``."""
    experiment = validated.experiment
    values, resolved, _ = run_values(experiment, configuration, secrets)
    hidden = secret_values(experiment.get("secrets"), resolved, secrets)
    found = []
    for section in ("method", "rollbacks"):
        for index, activity in enumerate(experiment.get(section) or []):
            if activity.get("type") != "action":
                continue
            provider = activity.get("provider") or {}
            module, func = str(provider.get("module", "")), str(provider.get("func", ""))
            kind = str(provider.get("type"))
            call = f"{module}.{func}" if kind == "python" else f"{kind} provider"
            reach: Reach | None = None
            targets: list[str] = []
            if kind == "python" and module.startswith(_OURS):
                reach_of = _reach_function(module, func)
                if reach_of is None:
                    continue  # an undo activity or one that injects nothing
                arguments = substitute(dict(provider.get("arguments") or {}), values, resolved)
                reach = reach_of(arguments, values)
                problem = scrub_text(reach.problem, hidden) if reach.problem else None
                why = scrub_text(reach.why, hidden)
                reach = Reach(reach.kind, reach.most, reach.percent, why, problem)
                targets = _targets_now(module, func, arguments, values)
            name = scrub_text(str(activity.get("name")), hidden)
            shown = tuple(scrub_text(target, hidden) for target in targets)
            found.append(FaultReach(f"{section}[{index}]", name, call, reach, shown))
    return found


def blast_radius_problems(
    reaches: list[FaultReach], limits: Mapping[str, KindLimit], source: str = "policy"
) -> list[str]:
    """Why the faults could exceed the policy's ``blast_radius`` (empty: they cannot)."""
    problems = []
    totals: dict[str, int] = defaultdict(int)
    adding: dict[str, list[str]] = defaultdict(list)  # kind → "where (activity): most"
    for fault in reaches:
        label = f"{fault.where} ({fault.activity})"
        reach = fault.reach
        if reach is None:
            problems.append(
                f"{label}: {fault.call} is not one of inoculate's faults, so how far it "
                "reaches cannot be bounded; a canary runs only faults it can bound"
            )
            continue
        limit = limits.get(reach.kind)
        if limit is None:
            problems.append(
                f"{label}: {reach.kind} faults are not allowed by the {source}'s blast_radius "
                f"(it allows {', '.join(sorted(limits)) or 'none'})"
            )
            continue
        if limit.max_count is not None:
            if reach.most is None:
                problems.append(f"{label}: how many targets it hits cannot be told: {reach.why}")
            else:
                totals[reach.kind] += reach.most
                adding[reach.kind].append(f"{label}: {reach.most}")
        if limit.max_percent is not None:
            if reach.percent is None:
                problems.append(
                    f"{label}: its share of the matching targets cannot be told now: {reach.why}"
                )
            elif reach.percent > limit.max_percent + 1e-9:
                problems.append(
                    f"{label}: could hit {reach.percent:.4g} % of the matching {reach.kind} "
                    f"targets ({reach.why}), above max_percent {limit.max_percent:g}"
                )
    for kind, total in totals.items():
        most = limits[kind].max_count
        if most is not None and total > most:
            problems.append(
                f"{kind} faults could hit {total} targets in all ({', '.join(adding[kind])}), "
                f"above max_count {most} (declare a smaller count, percentage or max_processes)"
            )
    return problems


def _reach_function(module: str, func: str) -> ReachOf | None:
    reach_of: ReachOf | None = family_table(module, "REACH").get(func)
    return reach_of


def _targets_now(
    module: str, func: str, arguments: Mapping[str, Any], values: Mapping[str, Any]
) -> list[str]:
    previewer = previewer_of(module, func)
    if previewer is None:
        return []
    try:
        return list(previewer(arguments, values))
    except Exception as exc:  # a preview that cannot tell says so
        return [f"cannot tell now: {type(exc).__name__}: {exc}"]
