"""Write our SLOs as OpenSLO v1: one ``SLO`` document per SLO, its SLI inline, read back by
:mod:`inoculate.experiment.openslo` as the same SLO and SLI.

Only an SLO with a Prometheus SLI has an OpenSLO form (OpenSLO needs a metric source); the
others are skipped, each with the reason:

- an SLO measured by the load (no ``prometheus`` SLI);
- a throughput SLO (its floor on every window has no OpenSLO objective: see
  :mod:`inoculate.experiment.openslo`);
- a name that is not a DNS label, or a histogram not in seconds (the unit rule).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from inoculate.experiment.openslo import (
    ANNOTATION_ENDPOINT,
    ANNOTATION_JOBS,
    ANNOTATION_WINDOW,
    API_VERSION,
    PROMETHEUS,
    CompliancePeriod,
)
from inoculate.model.errors import ExperimentInvalid, FieldError
from inoculate.steady_state.prometheus import (
    AvailabilitySli,
    LatencySli,
    PrometheusSli,
    parse_prometheus_sli,
)
from inoculate.steady_state.slo import AvailabilitySlo, LatencySlo, Slo, parse_slos

__all__ = [
    "Skipped",
    "experiment_slos",
    "export_experiment",
    "openslo_documents",
    "openslo_yaml",
]

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_LOAD_ONLY = (
    "measured by the load (no `prometheus` SLI): OpenSLO needs a Prometheus metric "
    "source; expected a `prometheus` SLI beside the SLO"
)


@dataclass(frozen=True)
class Skipped:
    """An SLO that has no OpenSLO form, where it is, and why."""

    name: str
    where: str
    reason: str


def openslo_documents(
    pairs: Iterable[tuple[Slo, PrometheusSli | None, str]],
    period: CompliancePeriod | None = None,
) -> tuple[list[dict[str, Any]], list[Skipped]]:
    """One OpenSLO ``SLO`` document per (SLO, its Prometheus SLI, where it is) that has an
    OpenSLO form, and the SLOs skipped with their reasons. ``period``: the ``timeWindow``
    written on each (none by default)."""
    documents, skipped = [], []
    for slo, sli, where in pairs:
        reason = _no_form(slo, sli)
        if reason is not None:
            skipped.append(Skipped(slo.name, where, reason))
            continue
        assert sli is not None
        documents.append(_document(slo, sli, period))
    return documents, skipped


def openslo_yaml(documents: Sequence[Mapping[str, Any]]) -> str:
    """The documents as one YAML stream (``---`` between them). Text outside ASCII is
    escaped: PyYAML folds a raw NEL (U+0085) in a label value into a space."""
    return yaml.safe_dump_all(documents, sort_keys=False, width=100)


def export_experiment(
    path: Path, period: CompliancePeriod | None = None
) -> tuple[str, list[Skipped]]:
    """The OpenSLO YAML of the SLOs of the experiment at ``path`` that have a form, and
    those skipped; raise :class:`ExperimentInvalid` when none has one (naming each)."""
    pairs = experiment_slos(path)
    documents, skipped = openslo_documents(pairs, period)
    if not documents:
        errors = [FieldError(item.where, f"SLO {item.name!r}: {item.reason}") for item in skipped]
        if not errors:
            errors = [
                FieldError(
                    "extensions", "no SLO to export; expected an `inoculate` block with `slos`"
                )
            ]
        raise ExperimentInvalid(str(path), errors)
    return openslo_yaml(documents), skipped


def experiment_slos(path: Path) -> list[tuple[Slo, PrometheusSli | None, str]]:
    """The inline SLOs of an experiment's ``inoculate`` block, each with its ``prometheus``
    SLI when it has one and its place (``extensions[0].slos[1]``). The file is read within the
    input limits; each SLO is validated as the block validates it."""
    # Imported here: validation loads chaoslib, which `slo check` does not need.
    from inoculate.experiment.spec import find_extension
    from inoculate.experiment.validation import load_experiment_file

    source = str(path)
    found = find_extension(load_experiment_file(Path(path)))
    if found is None:
        raise ExperimentInvalid(
            source, [FieldError("extensions", "no `inoculate` block; expected one with `slos`")]
        )
    index, block = found
    raw = block.get("slos")
    if not isinstance(raw, list):
        where = f"extensions[{index}].slos"
        raise ExperimentInvalid(source, [FieldError(where, "expected a list of SLOs")])
    pairs, errors = [], []
    for position, item in enumerate(raw):
        where = f"extensions[{index}].slos[{position}]"
        if not isinstance(item, Mapping):
            errors.append(FieldError(where, "expected an SLO mapping"))
            continue
        fields = {key: value for key, value in item.items() if key != "prometheus"}
        try:
            (slo,) = parse_slos([fields])
        except ValidationError as exc:
            errors.extend(
                FieldError(".".join([where, *map(str, error["loc"][2:])]), error["msg"])
                for error in exc.errors()
            )
            continue
        sli = None
        if item.get("prometheus") is not None:
            spec = item["prometheus"]
            if isinstance(spec, Mapping) and "sli" not in spec:
                spec = {**spec, "sli": slo.sli}
            try:
                sli = parse_prometheus_sli(spec, source, f"{where}.prometheus")
            except ExperimentInvalid as exc:
                errors.extend(exc.errors)
                continue
            if sli.sli != slo.sli:
                errors.append(
                    FieldError(f"{where}.prometheus.sli", f"expected {slo.sli!r}, the SLO's sli")
                )
                continue
        pairs.append((slo, sli, where))
    if errors:
        raise ExperimentInvalid(source, errors)
    return pairs


def _no_form(slo: Slo, sli: PrometheusSli | None) -> str | None:
    if sli is None:
        return _LOAD_ONLY
    if not isinstance(slo, AvailabilitySlo | LatencySlo):
        return (
            "a throughput floor on every window has no OpenSLO objective (its target "
            "must be below 1); keep it inline"
        )
    if not _DNS_LABEL.fullmatch(slo.name):
        return (
            "its name is not a DNS label, which OpenSLO names must be; expected at most 63 "
            "lower-case letters, digits and '-'"
        )
    if isinstance(sli, LatencySli) and not sli.histogram.endswith("_seconds"):
        return f"the histogram {sli.histogram!r} is not in seconds; expected NAME_seconds"
    if isinstance(sli, LatencySli) and sli.read_as == "quantile":
        return (
            "it is read as histogram_quantile, and an OpenSLO thresholdMetric is read back as "
            "the share of requests under the threshold; expected read_as: share"
        )
    return None


def _document(slo: Slo, sli: PrometheusSli, period: CompliancePeriod | None) -> dict[str, Any]:
    annotations = {ANNOTATION_WINDOW: str(slo.window_s)}
    if slo.endpoint is not None:
        annotations[ANNOTATION_ENDPOINT] = slo.endpoint
    indicator: dict[str, Any] = {"metadata": {"name": slo.name}}
    if sli.jobs:
        indicator["metadata"]["annotations"] = {ANNOTATION_JOBS: ",".join(sli.jobs)}
    if isinstance(sli, AvailabilitySli):
        ratio: dict[str, Any] = {"counter": True}
        for part in ("good", "bad", "total"):
            query = getattr(sli, part)
            if query is not None:
                ratio[part] = _metric_source(query)
        indicator["spec"] = {"ratioMetric": ratio}
    else:
        assert isinstance(sli, LatencySli)
        indicator["spec"] = {
            "thresholdMetric": _metric_source(f"{sli.histogram}_bucket{sli.selector}")
        }
    spec: dict[str, Any] = {"indicator": indicator}
    if period is not None:
        spec["timeWindow"] = [{"duration": period.duration, "isRolling": True}]
    spec["budgetingMethod"] = "Occurrences"
    if isinstance(slo, AvailabilitySlo):
        spec["objectives"] = [{"targetPercent": slo.objective}]
    else:
        assert isinstance(slo, LatencySlo)
        seconds = Decimal(repr(slo.threshold_ms)) / 1000
        spec["objectives"] = [
            {"op": "lte", "value": float(seconds), "targetPercent": slo.percentile}
        ]
    return {
        "apiVersion": API_VERSION,
        "kind": "SLO",
        "metadata": {"name": slo.name, "annotations": annotations},
        "spec": spec,
    }


def _metric_source(query: str) -> dict[str, Any]:
    return {"metricSource": {"type": PROMETHEUS, "spec": {"query": query}}}
