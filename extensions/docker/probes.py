"""Docker probes: state, health and restart count of containers, and waiting for health.

``inoculate.extensions.docker`` re-exports them, so experiments name
``module: inoculate.extensions.docker``.
Targets are those of the Docker faults (``name``, ``label``, ``pattern`` or ``service``);
results with ``met`` suit a jsonpath tolerance (``{type: jsonpath, path: "$.met", expect:
true}``).
"""

from __future__ import annotations

import time
from typing import Any

from chaoslib.types import Configuration

from inoculate.extensions.docker.engine import (
    Selector,
    container_facts,
    docker_host,
    find_containers,
    inspect_or_none,
    is_healthy,
    open_client,
)

__all__ = [
    "containers_healthy",
    "containers_running",
    "containers_state",
    "restart_count",
    "wait_until_healthy",
]

Names = str | list[str] | None


def containers_state(
    name: Names = None,
    label: Names = None,
    pattern: str | None = None,
    service: str | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Probe: status, health, restart count, pid and networks of each matching container."""
    selector = Selector.from_arguments(name, label, pattern, service, configuration)
    facts = _facts(configuration, selector)
    return {"target": selector.to_json(), "count": len(facts), "containers": facts}


def containers_running(
    name: Names = None,
    label: Names = None,
    pattern: str | None = None,
    service: str | None = None,
    min_count: int = 1,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Probe: ``met`` when at least ``min_count`` containers match and all of them run
    (a paused container does not)."""
    selector = Selector.from_arguments(name, label, pattern, service, configuration)
    facts = _facts(configuration, selector)
    met = len(facts) >= min_count and all(f["running"] for f in facts)
    return {"met": met, "target": selector.to_json(), "containers": facts}


def containers_healthy(
    name: Names = None,
    label: Names = None,
    pattern: str | None = None,
    service: str | None = None,
    min_count: int = 1,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Probe: ``met`` when at least ``min_count`` containers match and all are healthy
    (a container without a health check counts as healthy while it runs)."""
    selector = Selector.from_arguments(name, label, pattern, service, configuration)
    facts = _facts(configuration, selector)
    met = len(facts) >= min_count and all(is_healthy(f) for f in facts)
    return {"met": met, "target": selector.to_json(), "containers": facts}


def restart_count(
    name: Names = None,
    label: Names = None,
    pattern: str | None = None,
    service: str | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Probe: how often Docker's restart policy restarted each matching container."""
    selector = Selector.from_arguments(name, label, pattern, service, configuration)
    counts = {f["name"]: f["restart_count"] for f in _facts(configuration, selector)}
    return {"target": selector.to_json(), "total": sum(counts.values()), "containers": counts}


def wait_until_healthy(
    name: Names = None,
    label: Names = None,
    pattern: str | None = None,
    service: str | None = None,
    timeout_s: float = 30.0,
    min_count: int = 1,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Probe (or action): wait until ``containers_healthy`` is met; ``met: false`` after
    ``timeout_s`` (no exception, so a tolerance decides)."""
    started = time.monotonic()
    while True:
        result = containers_healthy(
            name, label, pattern, service, min_count, configuration=configuration
        )
        waited = time.monotonic() - started
        if result["met"] or waited >= timeout_s:
            return {**result, "waited_s": round(waited, 3)}
        time.sleep(0.1)


def _facts(configuration: Any, selector: Selector) -> list[dict[str, Any]]:
    with open_client(docker_host(configuration)) as client:
        facts = []
        for ref in find_containers(client, selector):
            info = inspect_or_none(client.api, ref.id)
            if info is not None:
                facts.append(container_facts(info))
    return facts
